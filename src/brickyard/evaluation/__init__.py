"""Evaluation: the built-in LLM judges behind the agents ``chat-assessments`` route."""

from ._judges import NEEDS, Complete, Item, assess, chat_completion, parse_verdict

__all__ = ["NEEDS", "Complete", "Item", "assess", "chat_completion", "parse_verdict"]
