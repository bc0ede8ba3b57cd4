"""Text normalisation before any word metric: lower case, no punctuation, single spaces, and for
Finnish, numbers written out as Finnish spells them (docs/eval.md, "Text normalisation")."""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

_NON_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)

FINNISH_NUMBER_LIMIT = 1_000_000  # 0 … 999 999 are written out; larger numbers stay digits


def finnish_number(n: int) -> str:
    """A cardinal number 0 … 999 999 in Finnish words, written as one word as Finnish spells it.

    >>> finnish_number(1990)
    'tuhatyhdeksänsataayhdeksänkymmentä'
    """
    if not 0 <= n < FINNISH_NUMBER_LIMIT:
        raise ValueError(f"{n} is outside 0 … {FINNISH_NUMBER_LIMIT - 1}")
    # num2words leaves a space after the thousands ("tuhat yksi"); written Finnish, and the
    # references, close it up. Over 0 … 999 999 that space is its only difference from the
    # one-word spelling this function wrote by hand before.
    return num2words(n, lang="fi").replace(" ", "")


_GROUPED = re.compile(r"(?<![\d,.])\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d,])")
_PERCENT = re.compile(r"(\d)\s*%")
_DECIMAL = re.compile(r"(\d+),(\d+)")
_DIGITS = re.compile(r"\d+")


def _spell(match: re.Match) -> str:
    n = int(match.group(0))
    return f" {finnish_number(n)} " if n < FINNISH_NUMBER_LIMIT else f" {match.group(0)} "


def _finnish_numbers(text: str) -> str:
    text = _GROUPED.sub(lambda m: re.sub(r"\s", "", m.group(0)), text)  # 10 000 → 10000
    text = _PERCENT.sub(r"\1 prosenttia", text)
    text = _DECIMAL.sub(r"\1 pilkku \2", text)  # 3,5 → kolme pilkku viisi
    return _DIGITS.sub(_spell, text)


def _language(language: str | None) -> str | None:
    return language.lower().replace("_", "-").split("-")[0] if language else None


def normalize_text(text: str, language: str | None = None) -> str:
    """Lower case, no punctuation, single spaces; keeps Finnish letters (ä, ö, å) as they are.

    With ``language='fi'`` numbers are also written out in Finnish words ("20" → "kaksikymmentä",
    "10 000" → "kymmenentuhatta", "3,5" → "kolme pilkku viisi", "5 %" → "viisi prosenttia"), so a
    reference in words and a hypothesis in digits match. Other languages keep digits.
    """
    text = unicodedata.normalize("NFC", text).lower()
    if _language(language) == "fi":
        text = _finnish_numbers(text)
    text = text.replace("-", " ")
    return " ".join(_NON_WORD.sub(" ", text).split())
