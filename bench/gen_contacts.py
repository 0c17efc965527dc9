#!/usr/bin/env python3
"""Writes N contacts as CSV (the import format) to stdout. Deterministic for a given N."""
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
rng = random.Random(42)
first = ["Anna", "Mads", "Sofie", "Ingrid", "Lars", "Elsa", "Erik", "Nora", "Emil", "Freja", "Hugo", "Maja"]
last = ["Jensen", "Nielsen", "Hansen", "Olsen", "Berg", "Andersson", "Johansson", "Larsen", "Haugen"]
locales = ["da", "nb", "sv", "en"]
sources = ["newsletter footer", "checkout opt-in", "in-store tablet", "contest 2024"]
out = sys.stdout
out.write("email,first_name,last_name,locale,external_id,email_consent_at,email_consent_source\n")
for i in range(n):
    f, l = rng.choice(first), rng.choice(last)
    out.write(
        f"{f.lower()}.{l.lower()}.{i}@example.com,{f},{l},{rng.choice(locales)},cust-{i},"
        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00,"
        f"{rng.choice(sources)}\n"
    )
