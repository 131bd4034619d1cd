"""Evaluation: the built-in LLM judges behind the agents ``chat-assessments`` route."""

from ._datasets import Datasets
from ._judges import NEEDS, Complete, Item, assess, chat_completion, parse_verdict

__all__ = ["NEEDS", "Complete", "Datasets", "Item", "assess", "chat_completion", "parse_verdict"]
