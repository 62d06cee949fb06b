#!/usr/bin/env python3
"""Chat prompts for drafter self-distillation, built from the text corpus.

Writes JSON lines {"messages": [{"role": "user", "content": ...}]} for
`dspark distill --prompts`: instructions and continuations over passages of
../shared/data/corpus (continue, summarize, rewrite, story openings, main
idea, questions about a passage, lists and explanations), plus generic
instructions whose topics are drawn from corpus words (poems, explanations,
tips, letters, small arithmetic word problems with corpus names). Never reads
../shared/data/prompts (the evaluation sets). Seeded: the same --seed and -n
give the same file.

    .venv/bin/python tools/make_distill_prompts.py -n 4000 --seed 0 \
        --out ~/.cache/dspark/distill/prompts.jsonl
"""

import argparse
import json
import pathlib
import random
import re

DEFAULT_CORPUS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus"

PASSAGE_TEMPLATES = [
    "Continue this passage:\n\n{p}",
    "Continue the following text in the same style for a few paragraphs.\n\n{p}",
    "Summarize the following passage in a few sentences.\n\n{p}",
    "Summarize this in one sentence:\n\n{p}",
    "Rewrite in plain modern English:\n\n{p}",
    "Rewrite this passage as a short news report.\n\n{p}",
    "Write a short story that begins: \"{s}\"",
    "What is the main idea of this passage?\n\n{p}",
    "Read the passage and answer: who are the people mentioned, and what do they want?\n\n{p}",
    "Here is a passage:\n\n{p}\n\nWrite three questions about it and answer them.",
    "List the key points of this text as bullet points.\n\n{p}",
    "Explain this passage to a ten-year-old.\n\n{p}",
    "What is the tone of this passage? Explain with examples from the text.\n\n{p}",
    "Translate the following passage into simple English and then explain any old-fashioned words.\n\n{p}",
    "Write a dialogue between two characters discussing this passage:\n\n{p}",
    "Give this passage a title and explain your choice.\n\n{p}",
    "Extract every name and place mentioned in this text, as a list.\n\n{p}",
    "{p}\n\nWhat happens next? Write the next scene.",
    "Write a letter from one of the people in this passage to a friend.\n\n{p}",
    "Turn this passage into a short poem.\n\n{p}",
]

TOPIC_TEMPLATES = [
    "Write a short poem about {w}.",
    "Explain what \"{w}\" means and give two example sentences.",
    "Give me three practical tips about {w}.",
    "Write a short essay on the importance of {w}.",
    "Write a persuasive paragraph about {w}.",
    "List five interesting facts about {w}.",
    "Describe {w} to someone who has never heard of it.",
    "Write a formal email to a colleague about {w}.",
    "Compare {w} and {v}. How are they similar and how are they different?",
    "Write a short story about {w} and {v}.",
    "What are the pros and cons of {w}?",
    "Imagine you are a tour guide. Describe a place famous for {w}.",
    "Write a haiku about {v}.",
    "Explain step by step how to teach someone about {w}.",
]

MATH_TEMPLATES = [
    "{a} has {x} {obj}. {b} gives {a} {y} more, and then {a} gives away {z}. How many {obj} does {a} have now? Explain your reasoning.",
    "{a} buys {x} {obj} at {y} dollars each. How much does {a} spend in total? Show your work.",
    "A ship sails {x} miles on the first day and {y} miles on the second day. How far does it sail in total, and what is the average per day?",
    "{a} reads {x} pages a day. How many days does it take to read a book of {w} pages? Explain.",
    "There are {x} rows of chairs with {y} chairs in each row. {z} chairs are empty. How many people are seated?",
]

STOP = set("""the and that with from this have were which their there would could should
about been them they what when will more into than then some your upon very much such
said only other these those being after before shall unto even must like every never
upon while where whom himself herself itself themselves myself yourself
""".split())


def passages(text, rng, count):
    """`count` random passages of 40-160 words from `text`, cut at paragraph
    or sentence boundaries."""
    paras = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    paras = [p for p in paras if len(p.split()) >= 8]
    out = []
    for _ in range(count):
        i = rng.randrange(len(paras))
        words = []
        while i < len(paras) and len(words) < 40:
            words += paras[i].split()
            i += 1
        limit = rng.randint(40, 160)
        chunk = " ".join(words[:limit])
        # End at a sentence boundary when one is near the end.
        cut = max(chunk.rfind(". "), chunk.rfind("? "), chunk.rfind("! "))
        if cut > len(chunk) // 2:
            chunk = chunk[:cut + 1]
        out.append(chunk)
    return out


def first_sentence(p):
    m = re.match(r"(.{20,200}?[.!?])(\s|$)", p)
    return m.group(1) if m else " ".join(p.split()[:20])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=4000, help="number of prompts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", type=pathlib.Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--generic-fraction", type=float, default=0.3,
                    help="share of topic / arithmetic prompts (the rest are passage tasks)")
    args = ap.parse_args()
    if "prompts" in args.corpus.resolve().parts:
        raise SystemExit("refusing to read an evaluation prompt set")

    rng = random.Random(args.seed)
    files = sorted(args.corpus.glob("*.txt"))
    if not files:
        raise SystemExit(f"no *.txt in {args.corpus}")
    texts = {f.stem: f.read_text(encoding="utf-8", errors="replace") for f in files}
    words, names = [], []
    for t in texts.values():
        for w in re.findall(r"\b[a-z]{5,12}\b", t[:400000]):
            if w not in STOP:
                words.append(w)
        names += re.findall(r"\b(?:Mr\.|Mrs\.|Miss) ([A-Z][a-z]{2,})", t[:400000])
    words = sorted(set(words))
    names = sorted(set(names)) or ["Anna", "Tom"]
    objs = ["apples", "books", "letters", "coins", "ribbons", "candles", "ships", "sheep", "loaves"]

    n_generic = int(round(args.n * args.generic_fraction))
    n_passage = args.n - n_generic
    stems = sorted(texts)
    per_file = {s: 0 for s in stems}
    for _ in range(n_passage):
        per_file[rng.choice(stems)] += 1
    prompts = []
    for s in stems:
        for p in passages(texts[s], rng, per_file[s]):
            tmpl = rng.choice(PASSAGE_TEMPLATES)
            prompts.append(tmpl.format(p=p, s=first_sentence(p)))
    for _ in range(n_generic):
        if rng.random() < 0.2:
            tmpl = rng.choice(MATH_TEMPLATES)
            a, b = rng.sample(names, 2)
            prompts.append(tmpl.format(a=a, b=b, x=rng.randint(2, 60), y=rng.randint(2, 40),
                                       z=rng.randint(1, 20), w=rng.randint(100, 900),
                                       obj=rng.choice(objs)))
        else:
            tmpl = rng.choice(TOPIC_TEMPLATES)
            w, v = rng.sample(words, 2)
            prompts.append(tmpl.format(w=w, v=v))
    rng.shuffle(prompts)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for p in prompts:
            f.write(json.dumps({"messages": [{"role": "user", "content": p}]}, ensure_ascii=False) + "\n")
    print(f"wrote {len(prompts)} prompts to {args.out}")


if __name__ == "__main__":
    main()
