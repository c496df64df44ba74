"""Example handlers for `cargo run -p pypool --example custom_handlers`."""

import re

from pypool_worker import command


@command(idempotent=True)
def slugify(title):
    print("slugifying", title)  # goes to stderr, never into the frame stream
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@command("count_vowels", idempotent=True)
def count_vowels(text):
    return {vowel: text.lower().count(vowel) for vowel in "aeiou"}


@command
def divide(a, b):
    return a / b  # b == 0 raises ZeroDivisionError: an error reply, not a dead worker
