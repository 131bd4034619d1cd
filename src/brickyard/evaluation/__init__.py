"""Evaluation: datasets, the built-in judges behind the agents ``chat-assessments`` route (a judge model or
the offline proxies), and deterministic scorers."""

from ._datasets import Datasets
from ._judges import NEEDS, Complete, Item, assess, chat_completion, parse_verdict
from ._offline import use_bundled_o200k
from ._prices import Price, PriceTable, load_prices
from ._proxies import Proxies
from ._runs import Evaluations

__all__ = ["NEEDS", "Complete", "Datasets", "Evaluations", "Item", "Price", "PriceTable", "Proxies", "assess", "chat_completion",
           "load_prices", "parse_verdict", "use_bundled_o200k"]
