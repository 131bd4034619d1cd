"""How a full-text query is read: its words, lower-cased, minus English function words, and its quoted phrases.

People type questions ("how do I read a file line by line"); the function words of a question ("how", "do",
"I", "a") match every FAQ page and drown the words that say what is asked. They count for ``STOP_WEIGHT`` of
a content word (enough to break ties between pages that match the content words equally, too little to
carry a page that matches nothing else), or fully when nothing else is left ("to be or not to be"). A phrase in double quotes must
appear as written, function words included (the index keeps every word and its position).

The list is Brickyard's own: articles, pronouns, auxiliary and modal verbs, prepositions, conjunctions and
question words. Content words that look generic in docs ("use", "get", "file") stay searchable.
"""

from __future__ import annotations

import re

STOP_WORDS = frozenset("""
a an the this that these those some any each every all both either neither no
i me my mine myself we us our ours you your yours he him his she her hers it its itself they them their theirs
what which who whom whose how why when where whether there here
am is are was were be been being have has had having do does did doing done
can could shall should will would may might must ought
about above across after against along among around at before behind below beside between beyond by down
during except for from in inside into near of off on onto out outside over per since than through to toward
towards under until up upon via with within without
and or but nor so yet if then else because while although though as also just only very too not
""".split())
STOP_WEIGHT = 0.5
_PHRASE = re.compile(r'"([^"]+)"')
WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str, *, drop_stop_words: bool = True) -> tuple[list[str], list[list[str]], list[str]]:
    """(the content words to match, the quoted phrases as word lists, the function words) of a full-text
    query. When nothing but function words is left, they are the content. ``drop_stop_words`` False
    treats every word as content (what benchmarks compare against)."""
    phrases = [words for words in (WORD.findall(p.lower()) for p in _PHRASE.findall(text)) if words]
    free = WORD.findall(_PHRASE.sub(" ", text).lower())
    if not drop_stop_words:
        return free, phrases, []
    content = [w for w in free if w not in STOP_WORDS]
    if not content and not phrases:
        return free, phrases, []
    return content, phrases, [w for w in free if w in STOP_WORDS]
