"""Presidio's analyzer, offline: no spaCy model download, no public-suffix-list fetch.

A privacy gateway runs air-gapped. Presidio's default engine loads a spaCy model (a
download) and its e-mail recognizer asks tldextract, which fetches the public suffix list
on first use. Here tldextract uses the snapshot bundled in its wheel, and Presidio runs its
pattern recognizers (e-mail, phone, credit card with Luhn, IBAN, IP, URL, US SSN, ...) on
the no-op NLP engine. When a spaCy English model is installed as a package, its NER is used
too (names, places); nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import logging

import tldextract
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngine, NoOpNlpEngine, SpacyNlpEngine

log = logging.getLogger("tollgate.guards")
SPACY_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")


def offline_tldextract() -> None:
    """Make tldextract's module-level extractor (which Presidio calls) use its snapshot."""
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def installed_spacy_model() -> str | None:
    return next((m for m in SPACY_MODELS if importlib.util.find_spec(m) is not None), None)


def nlp_engine() -> NlpEngine:
    model = installed_spacy_model()
    if model is None:
        engine: NlpEngine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    else:
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
    engine.load()
    log.info("presidio NLP engine: %s", model or "none (pattern recognizers only)")
    return engine


def build_analyzer() -> AnalyzerEngine:
    offline_tldextract()
    engine = nlp_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
