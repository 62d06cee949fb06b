#!/usr/bin/env python3
"""Chat prompts for drafter self-distillation, built from the text corpus.

Writes JSON lines {"messages": [{"role": "user", "content": ...}]} for
`dspark distill --prompts`: instructions and continuations over passages of
../shared/data/corpus (continue, summarize, rewrite, story openings, main
idea, questions about a passage, lists and explanations), plus generic
instructions whose topics are drawn from corpus words (poems, explanations,
tips, letters, small arithmetic word problems with corpus names). Never reads
../shared/data/prompts (the evaluation sets).

With --code-fraction F, that share of the prompts are coding tasks built from
the Python standard library of the interpreter running this script (or
--stdlib DIR): functions and methods that have a docstring and fit in
60 lines / 2500 characters become "write a function that <docstring>",
"explain / document / add type hints / write unittest tests / refactor / find
bugs in this code" and "complete this function" (signature and docstring
only); module docstrings become a few summary and usage prompts. Test
directories (test/, tests/, so lib2to3's too), idlelib/, encodings/,
site-packages and files that do not parse are skipped. F defaults to 0, which
leaves the prose-only output exactly as before. Recommended: SmolLM2 (general
chat) 0.2, Qwen2.5-Coder 0.7.

Seeded: the same --seed and -n (and Python version, when code is included)
give the same file.

    .venv/bin/python tools/make_distill_prompts.py -n 4000 --seed 0 \
        --out ~/.cache/dspark/distill/prompts.jsonl
    .venv/bin/python tools/make_distill_prompts.py -n 6000 --seed 0 \
        --code-fraction 0.7 --out ~/.cache/dspark/distill/prompts-coder.jsonl
"""

import argparse
import ast
import json
import os
import pathlib
import random
import re
import sysconfig
import textwrap

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


# --- Code prompts from the standard library ---------------------------------

# A function's source must fit in both, so that most prompts (about 85% with
# the Qwen tokenizer, chat template included) stay within a 256-token prompt
# budget (`dspark distill --max-prompt-tokens`).
MAX_CODE_LINES = 60
MAX_CODE_CHARS = 2500
MIN_CODE_LINES = 3  # without the docstring: signature and two lines of body
MAX_DESCRIPTION_CHARS = 400
MAX_MODULE_DOC_CHARS = 1200
MODULE_SHARE = 0.08  # of the code prompts, the rest are per function

# Directories never read: tests (they would teach the tests' own shape),
# IDLE, third-party packages, build configuration, generated codec tables.
SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages",
             "__pycache__", "pydoc_data", "ensurepip", "encodings"}
# Module prompts only for modules at most this deep (`email.utils`, not each
# of lib2to3's fifty `lib2to3.fixes.fix_*`).
MAX_MODULE_DEPTH = 2

# {sig}: `name(args)`, {desc}: the docstring's first paragraph rephrased to
# follow "that" ("returns the ..."), {para}: that paragraph as written,
# {cls}: the class of a method.
WRITE_TEMPLATES = [
    "Write a Python function `{sig}` that {desc}",
    "Implement `{sig}` in Python. It {desc}",
    "Write a Python function `{sig}` for this description:\n\n{para}",
]
WRITE_METHOD_TEMPLATES = [
    "In a Python class `{cls}`, write the method `{sig}` that {desc}",
    "Implement the method `{cls}.{sig}` in Python. It {desc}",
]
# {kind}: "function" or "method", {src}: the source, dedented.
SOURCE_TEMPLATES = [
    "Explain what this Python {kind} does:\n\n```python\n{src}```",
    "Explain this code line by line.\n\n```python\n{src}```",
    "Write unit tests with unittest for this {kind}:\n\n```python\n{src}```",
    "Write a few pytest tests for this Python {kind}.\n\n```python\n{src}```",
    "Refactor this {kind} for readability:\n\n```python\n{src}```",
    "Find possible bugs or unhandled edge cases in this Python {kind}.\n\n```python\n{src}```",
    "Review this code and suggest improvements.\n\n```python\n{src}```",
    "Show how to call this {kind} with a short example, and what it returns.\n\n```python\n{src}```",
    "What is the time complexity of this {kind}? Explain.\n\n```python\n{src}```",
]
HINT_TEMPLATES = [
    "Add type hints to this Python {kind}:\n\n```python\n{src}```",
    "Add type annotations to the parameters and return value of this {kind}.\n\n```python\n{src}```",
]
# {src}: the source with its docstring removed.
DOCSTRING_TEMPLATES = [
    "Write a docstring for this {kind}:\n\n```python\n{src}```",
    "Add a Google-style docstring to this Python {kind}.\n\n```python\n{src}```",
]
# {src}: signature and docstring only.
COMPLETE_TEMPLATES = [
    "Complete this Python {kind}:\n\n```python\n{src}```",
    "Fill in the body of this {kind} so that it does what its docstring says.\n\n```python\n{src}```",
]
# {mod}: module name, {doc}: its docstring (first paragraphs), {names}: some
# of its public functions and classes.
MODULE_TEMPLATES = [
    "Summarize what the Python module `{mod}` provides, based on its docstring:\n\n{doc}",
    "Here is the docstring of Python's `{mod}` module:\n\n{doc}\n\nWrite a short example program that uses this module.",
    "Based on this documentation of the Python module `{mod}`, write three questions a beginner might ask about it and answer them.\n\n{doc}",
]
MODULE_NAMES_TEMPLATE = ("The Python module `{mod}` defines {names}. "
                         "Briefly explain what each one is probably for.")

# Imperative first words of docstrings ("Return the ..."), turned into the
# third person to follow "that" ("... that returns the ...").
DOC_VERBS = set("""
accept acquire add append apply build calculate call cancel check clear close
collect combine compare compile compute construct convert copy count create
decode delete determine display emit encode ensure escape evaluate execute
expand extract fetch fill filter find flush format generate get handle insert
install iterate join load log look lookup make map match merge normalize open parse
pop print process produce push put quote raise read receive register release remove
rename replace reset resolve restore retrieve return reverse run save scan
search send set show skip sort split start stop strip test translate truncate try turn unquote
unregister unwrap update validate wait walk wrap write yield
""".split())


def third_person(verb):
    """'return' -> 'returns', 'search' -> 'searches', 'copy' -> 'copies'."""
    if verb in ("do", "go"):
        return verb + "es"
    if re.search(r"(s|x|z|ch|sh)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def first_paragraph(doc, limit):
    """The docstring's first paragraph on one line, up to any argument list
    and cut at a sentence end when longer than `limit`; None when there is
    none or it looks like code."""
    lines = []
    for line in doc.strip().split("\n\n")[0].splitlines():
        if re.match(r"\s*([-*] |(Arguments|Args|Parameters|Returns|Raises|Keyword arguments)\b.*:\s*$)", line):
            break
        lines.append(line)
    para = " ".join(" ".join(lines).split())
    para = re.split(r"\s(?:Arguments|Args|Parameters|Returns|Raises):", para)[0]
    if len(para.split()) < 3 or ">>>" in para:
        return None
    if len(para) > limit:
        cut = max(para.rfind(". ", 0, limit), para.rfind(".\n", 0, limit))
        if cut < 40:
            return None
        para = para[:cut + 1]
    if para[-1] not in ".!?":
        para += "."
    return para


def as_clause(para):
    """A first paragraph that starts with an imperative verb ("Return x.")
    rephrased to follow "that" ("returns x."); None when it does not."""
    m = re.match(r"([A-Za-z]+)(.*)", para, re.S)
    if not m:
        return None
    word, rest = m.group(1).lower(), m.group(2)
    if word in DOC_VERBS:
        return third_person(word) + rest
    if word.endswith("s") and word[:-1] in DOC_VERBS or word.endswith("es") and word[:-2] in DOC_VERBS:
        return word + rest
    return None


def stdlib_files(root):
    """Every .py file under `root`, sorted by relative path, skipping
    SKIP_DIRS and config-* directories."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not d.startswith("config-"))
        out += [pathlib.Path(dirpath) / f for f in filenames if f.endswith(".py")]
    return sorted(out, key=lambda f: f.relative_to(root).as_posix())


def module_name(root, path):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def function_unit(node, lines, cls):
    """A function or method of modest size with a docstring, as a dict of the
    prompt pieces (source, source without docstring, stub), or None."""
    doc = ast.get_docstring(node)
    if not doc or len(node.body) < 2:
        return None
    doc_node = node.body[0]
    # Docstring on its own lines, after the signature.
    if doc_node.lineno <= node.lineno or node.body[1].lineno <= doc_node.end_lineno:
        return None
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
    src_lines = lines[start:node.end_lineno]
    src = textwrap.dedent("".join(src_lines))
    if len(src_lines) > MAX_CODE_LINES or len(src) > MAX_CODE_CHARS:
        return None
    if not re.match(r"(@|def |async def )", src):
        return None  # a multi-line string at column 0 kept dedent from working
    para = first_paragraph(doc, MAX_DESCRIPTION_CHARS)
    if para is None:
        return None
    # Indices relative to src_lines.
    d0, d1 = doc_node.lineno - 1 - start, doc_node.end_lineno - start
    rest = src_lines[d1:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    if d0 + len(rest) < MIN_CODE_LINES:
        return None
    nodoc = textwrap.dedent("".join(src_lines[:d0] + rest))
    stub = textwrap.dedent("".join(src_lines[:d1]))
    args = node.args
    all_args = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
    annotated = node.returns is not None or any(a.annotation is not None for a in all_args)
    return {
        "name": node.name,
        "cls": cls,
        "sig": f"{node.name}({ast.unparse(node.args)})",
        "para": para,
        "src": src,
        "nodoc": nodoc,
        "stub": stub,
        "annotated": annotated,
    }


def module_doc(name, doc):
    """The first paragraphs of module `name`'s docstring, line breaks kept
    (they often hold code examples), without authorship and copyright lines
    or a bare title, at most MAX_MODULE_DOC_CHARS."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", doc.strip())]
    paras = [p for p in paras if p and not re.search(
        r"copyright|written by|author|rights reserved|@\w|automatically generated", p, re.I)]
    if paras and paras[0].split(" ")[0] == name and len(paras[0].split()) <= 3:
        paras = paras[1:]
    paras = paras[:3]
    while paras and paras[-1].endswith(":"):
        paras.pop()
    text = "\n\n".join(paras)
    if len(text) > MAX_MODULE_DOC_CHARS:
        text = text[:text.rfind("\n", 0, MAX_MODULE_DOC_CHARS)].rstrip()
    return text


def code_units(root):
    """(functions, modules) found under the standard library at `root`:
    functions as from function_unit, deduplicated by source; modules as
    dicts of name, docstring and public names."""
    functions, modules, seen = [], [], set()
    for path in stdlib_files(root):
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text, filename=str(path))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        lines = text.splitlines(keepends=True)
        candidates = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                candidates.append((node, None))
            elif isinstance(node, ast.ClassDef):
                candidates += [(m, node.name) for m in node.body
                               if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node, cls in candidates:
            unit = function_unit(node, lines, cls)
            if unit and unit["src"] not in seen:
                seen.add(unit["src"])
                functions.append(unit)
        name = module_name(root, path)
        parts = name.split(".")
        doc = ast.get_docstring(tree)
        if doc and name and len(parts) <= MAX_MODULE_DEPTH and not any(p.startswith("_") for p in parts):
            text = module_doc(name, doc)
            public = [n.name for n in tree.body
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and not n.name.startswith("_")]
            if len(text) >= 40:
                modules.append({"name": name, "doc": text, "public": public})
    return functions, modules


def function_prompt(u, rng):
    """One coding prompt about function unit `u`, its task drawn at random."""
    kind = "method" if u["cls"] else "function"
    tasks = ["source"] * 3 + ["docstring", "complete"]
    desc = as_clause(u["para"])
    if desc:
        tasks += ["write"] * 3
    if not u["annotated"]:
        tasks.append("hints")
    task = rng.choice(tasks)
    if task == "write":
        if u["cls"]:
            return rng.choice(WRITE_METHOD_TEMPLATES).format(cls=u["cls"], sig=u["sig"], desc=desc)
        return rng.choice(WRITE_TEMPLATES).format(sig=u["sig"], desc=desc, para=u["para"])
    templates, src = {
        "source": (SOURCE_TEMPLATES, u["src"]),
        "hints": (HINT_TEMPLATES, u["src"]),
        "docstring": (DOCSTRING_TEMPLATES, u["nodoc"]),
        "complete": (COMPLETE_TEMPLATES, u["stub"]),
    }[task]
    return rng.choice(templates).format(kind=kind, src=src)


def module_prompt(m, rng):
    if len(m["public"]) >= 3 and rng.random() < 0.3:
        names = [f"`{n}`" for n in m["public"][:12]]
        listed = ", ".join(names[:-1]) + " and " + names[-1]
        return MODULE_NAMES_TEMPLATE.format(mod=m["name"], names=listed)
    return rng.choice(MODULE_TEMPLATES).format(mod=m["name"], doc=m["doc"])


def code_prompts(root, rng, count):
    """`count` distinct coding prompts from the standard library at `root`."""
    functions, modules = code_units(root)
    if not functions:
        raise SystemExit(f"no documented functions found under {root}")
    n_module = int(round(count * MODULE_SHARE)) if modules else 0
    out, seen = [], set()

    def take(make, units, wanted):
        # Cycle over the shuffled units: one prompt each per pass, so every
        # unit is used once before any is used twice.
        order = list(units)
        attempts = 0
        while wanted > 0 and attempts < 20 * len(order) + 100:
            rng.shuffle(order)
            for u in order:
                if wanted == 0:
                    break
                attempts += 1
                p = make(u, rng)
                if p not in seen:
                    seen.add(p)
                    out.append(p)
                    wanted -= 1
        return wanted

    left = take(module_prompt, modules, n_module)
    take(function_prompt, functions, count - n_module + left)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=4000, help="number of prompts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", type=pathlib.Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--generic-fraction", type=float, default=0.3,
                    help="share of the prose prompts that are topic / arithmetic prompts "
                         "(the rest are passage tasks)")
    ap.add_argument("--code-fraction", type=float, default=0.0,
                    help="share of all prompts that are coding tasks from the Python standard "
                         "library (SmolLM2: 0.2, Qwen2.5-Coder: 0.7)")
    ap.add_argument("--stdlib", type=pathlib.Path, default=pathlib.Path(sysconfig.get_paths()["stdlib"]),
                    help="directory of Python sources for the coding prompts "
                         "(default: this interpreter's standard library)")
    args = ap.parse_args()
    if "prompts" in args.corpus.resolve().parts:
        raise SystemExit("refusing to read an evaluation prompt set")
    if not 0.0 <= args.code_fraction <= 1.0:
        raise SystemExit("--code-fraction must be in [0, 1]")

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

    n_code = int(round(args.n * args.code_fraction))
    n_prose = args.n - n_code
    n_generic = int(round(n_prose * args.generic_fraction))
    n_passage = n_prose - n_generic
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
    if n_code:
        # Its own generator, so that the prose prompts draw nothing for the
        # code ones; with no code prompts the output is as before.
        prompts += code_prompts(args.stdlib, random.Random(f"code-{args.seed}"), n_code)
    rng.shuffle(prompts)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for p in prompts:
            f.write(json.dumps({"messages": [{"role": "user", "content": p}]}, ensure_ascii=False) + "\n")
    print(f"wrote {len(prompts)} prompts to {args.out}")


if __name__ == "__main__":
    main()
