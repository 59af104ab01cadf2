"""Non-answers and leaks, checked for every template: `check_non_answer(text, source, instructions, spec)`
returns None or a reject reason.

- `non_answer:meta`: the model talks about the task instead of doing it ("The document is ready.", "I'm ready
  to help. What's your question?", "Please provide the text ...") — a short output led by such a phrase;
- `non_answer:refusal`: "I'm sorry, but I can't ...", "As an AI language model ...";
- `non_answer:about_document`: it describes "the document" instead of giving its content (more than
  `max_document_mentions` mentions per 100 words);
- `non_answer:echo`: it repeats the instructions (an 8-word run of the template's own text);
- `copy`: most of it is copied from the source (share of its 8-grams found in the source > `max_copy`);
- `off_topic`: too few of its content words occur in the source (< `min_topic_overlap`), counting only words
  that say what a text is about (not the vocabulary any how-to shares: install, run, file, step, ...): a generic
  answer or an invented subject; `off_topic:generic_steps`: most steps of a list name nothing of the source
  ("Read the document carefully", "Identify the main points");
- `language`: not in the language asked (`language = "en"`: too few common English words, or more common words
  of another language than of English, table cells included).

The thresholds are the SETTINGS below; a template's `[check]` table may override any of them.
"""

from __future__ import annotations

import re

SETTINGS = {
    "max_copy": 0.6,
    "min_topic_overlap": 0.2,
    "max_document_mentions": 2.0,  # per 100 words
    "language": "en",
    "echo_ngram": 8,
}

_WORD = re.compile(r"[a-z0-9']+")
_ALNUM = re.compile(r"[a-z0-9]+")
_WORD_ANY = re.compile(r"[^\W\d_]+")  # words with accented letters whole (für, être, más)
_META = re.compile(
    r"\b(?:the (?:document|text|faq|table|tutorial|problem) is (?:ready|available|complete|below|attached)|"
    r"i(?:'m| am) (?:ready|here|happy|glad) to help|(?:please )?provide (?:me with )?(?:the|a|your) (?:text|document)|"
    r"what(?:'s| is) your question|how can i (?:help|assist)|i(?:'d| would) be (?:happy|glad) to|"
    r"let me know if|feel free to|(?:go ahead|please) (?:and )?(?:share|provide|paste)|"
    r"you would like me to|ready to be edited|is available for download|here is the (?:rewritten|requested))\b", re.I)
# phrases that are never content, wherever they are
_META_ANY = re.compile(r"\b(?:the answer to (?:this|that|your|the) question is|this is a great question|"
                       r"the document is ready|"
                       r"is not available yet|what(?:'s| is) your question|i(?:'m| am) ready to help)\b", re.I)
# an answer that opens by describing itself ("The tutorial is designed to ...", "Here's an example of the FAQ")
_META_LEAD = re.compile(
    r"^(?:[^\n]{0,80}\b)?(?:the (?:tutorial|faq|table|problem|steps|answer|rewrite) (?:is|are) (?:designed|numbered|"
    r"formatted|written|structured|organized)|here(?:'s| is) (?:an example of|a sample of) (?:the|a|an) )", re.I)
_REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry,|unfortunately,? i|i (?:cannot|can't|can not|am unable to|'m unable to)|"
    r"as an ai\b)", re.I)
_DOC_MENTION = re.compile(r"\b(?:the|this) (?:document|text|article|passage|page|excerpt)\b", re.I)
_STOP = set("""a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or
other our out over own same she should so some such than that the their them then there these they this those
through to too under until up very was we were what when where which while who whom why will with would you your
yours one two use used using may might must shall get make""".split())
# words any instructions or explanation use, whatever they are about: shared with a source, they show no topic
_GENERIC = set("""install run open file command step click create package type select follow make need want first
next then finally check sure read write find start save window button program system computer document text
information example process different important following main point points know learn understand note
section steps provide provided include includes including help able work working works value values change set
setting settings user users data time way thing things part parts number list simple easy like also well good new
tutorial question answer answers questions identify summarize summary review carefully details detail key""".split())
# the commonest words of other languages written in Latin letters (German, French, Spanish, Italian, Portuguese)
# (not those that are English words too, or Python's: was, die, del, con, par, pas, est, com)
_FOREIGN_COMMON = set("""der das und ist nicht mit für von den dem ein eine einen sich auf auch wird werden sind
wie oder bei aus nach zum zur kann wenn nur noch alle dann diese dieser einer über zwischen ohne gibt zuerst frage
antwort les une pour dans que qui sur avec sont aux ces cette être peut ont réponse los las para por una como más
pero sus este esta están puede también pregunta respuesta cuando che della delle sono gli nel nella questo questa
può domanda risposta não uma pelo pela são está""".split())
# answers that put the question off instead of answering it
_EVASIVE = re.compile(r"^\W*(?:it depends\b|(?:please )?(?:see|refer to|consult|check) (?:the|its|their|your)\b"
                      r"[^.]{0,40}\b(?:manual|documentation|docs|reference|guide|website)|this is (?:covered|"
                      r"described|explained|discussed) (?:elsewhere|later|below|above)|as (?:described|explained) "
                      r"in the (?:documentation|manual|docs)|(?:there are|it has) (?:several|many|various)\b[^.]{0,40}"
                      r"as described)", re.I)
_EN_COMMON = set("""the of and to a in is that for it as with are on this be by or an you can from at which not
have has was will if your use all each their more one its also but they than when there so these what how do""".split())


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(words: list[str], n: int) -> set[tuple]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _stem(w: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def _content(words: list[str]) -> list[str]:
    return [_stem(w) for w in words if len(w) >= 4 and w not in _STOP and w not in _GENERIC and not w.isdigit()]


def _not_english(text: str) -> bool:
    """Mostly letters outside the Latin alphabet; or (from 20 words of running text; table cells left out) too
    few of the commonest English words; or, cells included, more common words of another language than of
    English (a table in German for an English page)."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 40 and sum(1 for c in letters if c.isascii()) / len(letters) < 0.5:
        return True
    prose = _words("\n".join(ln for ln in text.splitlines() if "|" not in ln))
    if len(prose) >= 20 and sum(1 for w in prose if w in _EN_COMMON) / len(prose) < 0.08:
        return True
    words = _WORD_ANY.findall(text.lower())
    foreign = sum(1 for w in words if w in _FOREIGN_COMMON)
    return foreign >= 4 and foreign > sum(1 for w in words if w in _EN_COMMON)


def check_non_answer(text: str, source: str | None = None, instructions: str | None = None,
                     spec: dict | None = None) -> str | None:
    s = {**SETTINGS, **{k: v for k, v in (spec or {}).items() if k in SETTINGS}}
    words = _words(text)
    n = len(words)
    head = text.strip()[:300]
    if _REFUSAL.search(head):
        return "non_answer:refusal"
    if _META.search(text) and n < 60 or _META_LEAD.search(text.strip()[:200]) or _META_ANY.search(text):
        return "non_answer:meta"
    if instructions:
        k = int(s["echo_ngram"])
        template_grams = _ngrams(_words(instructions), k)
        if n >= k and _ngrams(words, k) & template_grams:
            return "non_answer:echo"
    mentions = len(_DOC_MENTION.findall(text))
    if mentions >= 2 and mentions * 100 / max(n, 1) > float(s["max_document_mentions"]):
        return "non_answer:about_document"
    if s["language"] == "en" and _not_english(text):
        return "language"
    if source:
        src = _words(source)
        if n >= 16:
            grams = _ngrams(words, 8)
            if grams and len(grams & _ngrams(src, 8)) / len(grams) > float(s["max_copy"]):
                return "copy"
        content = _content(words)
        if len(content) >= 12:
            src_content = set(_content(src))
            overlap = sum(1 for w in content if w in src_content) / len(content)
            if overlap < float(s["min_topic_overlap"]):
                return "off_topic"
    return None


def evasive_answers(answers: list[str]) -> bool:
    """Half or more of a FAQ's answers put the question off ("It depends.", "See the manual for details.")."""
    return bool(answers) and sum(1 for a in answers if _EVASIVE.search(a)) >= 0.5 * len(answers)


def answer_from_table(answer: str, cells: list[str]) -> bool:
    """The answer after a table names something of the table (a word or number that is not a stop word), or is
    a yes or a no."""
    if re.match(r"^\W*(?:yes|no)\b", answer, re.I):
        return True
    table_words = {w for c in cells for w in _ALNUM.findall(c.lower()) if w not in _STOP}
    return any(w in table_words for w in _ALNUM.findall(answer.lower()))


def generic_steps(steps: list[str], source: str) -> bool:
    """Most of the steps (of a list of three or more) name nothing of the source: steps that would fit any
    document ("Read the document carefully", "Identify the main points")."""
    if len(steps) < 3:
        return False
    src_content = set(_content(_words(source)))
    empty = sum(1 for st in steps if not any(w in src_content for w in _content(_words(st))))
    return empty >= 0.6 * len(steps)
