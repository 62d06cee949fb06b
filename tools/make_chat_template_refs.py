#!/usr/bin/env python3
"""Reference renderings for dspark's chat template interpreter.

Renders real chat templates (and small templates exercising one Jinja feature
each) over a set of conversations with Python jinja2 set up exactly as
transformers' apply_chat_template does, and writes
tests/common/tokenizer/testdata/chat_template_refs.json:

  {"templates": {name: source},
   "cases": [{"name", "template", "context", "expected" | "error",
              "now_unix"?}]}

chat_template_test.cc renders every case with dspark::tokenizer::ChatTemplate
and compares byte for byte ("error": the message raise_exception gave).

Template sources (nothing is downloaded):
  - "chat_template" of shared/data/tokenizers/{qwen3,llama3,gemma3}/
    tokenizer_config.json (mistral's has none: the Mistral-7B-Instruct-v0.1
    template is written out below);
  - tokenizer.chat_template of the GGUFs `dspark pull` leaves in
    $DSPARK_HOME/models (SmolLM2-135M-Instruct, Qwen2.5-Coder-0.5B-Instruct),
    read with the `gguf` package (--model NAME=PATH overrides a path).

  python3 tools/make_chat_template_refs.py   # needs jinja2 and gguf
"""

import argparse
import datetime
import json
import pathlib
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import refs_common  # noqa: E402

OUT = refs_common.REPO_ROOT / "tests" / "common" / "tokenizer" / "testdata" / "chat_template_refs.json"
SHARED_TOKENIZERS = refs_common.REPO_ROOT.parent / "shared" / "data" / "tokenizers"

# strftime_now() in the references formats this instant (UTC); the C++ test
# passes it as RenderLimits::now. Formats use only year/month/day so the
# local time zone cannot change the result.
NOW = datetime.datetime(2024, 6, 15, 12, 0, 0, tzinfo=datetime.timezone.utc)

MISTRAL_V01 = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}"
)


class AssistantTracker(Extension):
    """transformers' {% generation %} tag (renders its body)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def gguf_template(path):
    import gguf  # only the metadata is read

    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def hf_template(name):
    with open(SHARED_TOKENIZERS / name / "tokenizer_config.json", encoding="utf-8") as f:
        config = json.load(f)
    return config["chat_template"], config.get("bos_token"), config.get("eos_token")


# --- conversations ---------------------------------------------------------

USER = {"role": "user", "content": "Hello! What is 2+2?"}
SYSTEM = {"role": "system", "content": "You are a terse assistant."}
ASSISTANT = {"role": "assistant", "content": "4."}
UNICODE = {"role": "user", "content": "  Ünïcödé «quotes» 'single' \"double\" 日本語 🦙\n\ttabbed  "}
MULTILINE = {"role": "assistant", "content": "Line one.\n\nLine two with {{ braces }} and {% tags %}."}

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"},
                                      "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two numbers <a> & <b>.",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                       "required": ["a", "b"]}}},
]
TOOL_CALL_TURNS = [
    {"role": "user", "content": "Weather in Zürich, and 2.5 + 4?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}},
        {"type": "function", "function": {"name": "add", "arguments": {"a": 2.5, "b": 4}}}]},
    {"role": "tool", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"},
    {"role": "tool", "content": "6.5"},
    {"role": "assistant", "content": "It is 21°C and clear; 2.5 + 4 = 6.5."},
    {"role": "user", "content": "Thanks"},
]
TOOL_CALL_STRING_ARGS = [
    {"role": "user", "content": "Add 1 and 2"},
    {"role": "assistant", "content": "Calling add.", "tool_calls": [
        {"type": "function", "function": {"name": "add", "arguments": "{\"a\": 1, \"b\": 2}"}}]},
    {"role": "tool", "content": "3"},
]
THINKING = [
    {"role": "user", "content": "Think first: 3*3?"},
    {"role": "assistant", "content": "<think>\nThree threes.\n</think>\n\n9"},
    {"role": "user", "content": "And 4*4?"},
    {"role": "assistant", "content": "16", "reasoning_content": "Four fours."},
]
GEMMA_PARTS = [
    {"role": "system", "content": [{"type": "text", "text": "Describe images briefly."}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "  What is this?  "}]},
]

CONVERSATIONS = {
    "user": [USER],
    "system_user": [SYSTEM, USER],
    "multi_turn": [SYSTEM, USER, ASSISTANT, {"role": "user", "content": "And 3+3?"}],
    "no_system_multi": [USER, ASSISTANT, {"role": "user", "content": "Thanks"}],
    "unicode": [UNICODE, MULTILINE, {"role": "user", "content": ""}],
}


def chat_cases(template, bos, eos, convs, extra_contexts=()):
    cases = []
    for conv_name, messages in convs.items():
        for gen in (True, False):
            cases.append((f"{conv_name}/gen={int(gen)}",
                          {"messages": messages, "tools": None, "documents": None,
                           "add_generation_prompt": gen, "bos_token": bos, "eos_token": eos}))
    for name, ctx in extra_contexts:
        full = {"messages": [], "tools": None, "documents": None, "add_generation_prompt": True,
                "bos_token": bos, "eos_token": eos}
        full.update(ctx)
        cases.append((name, full))
    return [(template, n, c) for n, c in cases]


# --- one feature per template ----------------------------------------------

FEATURES = {
    "ws_control": "a  {{- ' b ' -}}  c\n  {%- if true %} d {% endif -%}\n e {#- comment -#} f\n{%+ if true %}g{% endif %}",
    "trim_lstrip": "<\n  {% if true %}\n    x\n  {% endif %}\n  {# c #}\n  y {{ 1 }}\n  {% for i in [1,2] %}\n{{ i }}\n  {% endfor %}\n>\n",
    "raw": "{% raw %}{{ not rendered }} {% if %}{% endraw %}|{%- raw -%}  a  {%- endraw %}|",
    "literals": "{{ 'it''s' }} {{ \"q\\\"\\n\\t\\\\\\x41\\u00e9\\U0001F999\" }} {{ 1_000 }} {{ 0x1F }} {{ 1.5e3 }} {{ 0.5 if false else 2.50 }} {{ none }} {{ None }} {{ true }} {{ False }}",
    "str_output": "{{ [1, 'a', none, true, 2.5, {'k': \"it's\"}] }} {{ (1,) }} {{ () }} {{ {'a': [1, (2, 3)]} }} {{ 1e16 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 3.0 }} {{ -0.0 }}",
    "arith": "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ 7.5 % 2 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ 1 + 2 * 3 - -1 }} {{ (1 + 2) * 3 }} {{ true + 1 }} {{ 'a' ~ 1 ~ none ~ undefined_var ~ 2.0 }}",
    "compare_logic": "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ [1, 2] == [1, 2] }} {{ 'a' < 'b' }} {{ 'b' in 'abc' }} {{ 2 not in [1, 3] }} {{ 'k' in {'k': 1} }} {{ 0 or 'x' }} {{ 1 and 'y' }} {{ not 0 }} {{ none or [] }} {{ 'a' if 0 else 'b' }} {{ [1] != [1] }}",
    "if_elif": "{% for x in [0, 1, 2, 3] %}{% if x == 0 %}zero{% elif x == 1 %}one{% elif x is even %}even{% else %}odd{% endif %},{% endfor %}",
    "for_loop": "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}:{{ m.role }}|{% endfor %}",
    "for_else_filter": "{% for x in [] %}never{% else %}empty{% endfor %} {% for x in range(10) if x is odd %}{{ x }}{{ '/' if not loop.last }}{% endfor %} {% for x in range(5) %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}",
    "for_dict": "{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }};{% endfor %} {% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %} {% for a, b in [[1, 2], (3, 4)] %}{{ a + b }}{% endfor %} {% for c in 'héllo' %}[{{ c }}]{% endfor %}",
    "loop_cycle_prev": "{% for x in ['a', 'b', 'c'] %}{{ loop.cycle('odd', 'even') }}:{{ loop.previtem | default('-') }}>{{ loop.nextitem | default('-') }} {% endfor %}",
    "scoping": "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }} {% if true %}{% set y = 5 %}{% endif %}{{ y }}",
    "namespace": "{% set ns = namespace(count=0, found=false, items=[]) %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% if m.role == 'assistant' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }} {{ ns.missing is defined }}",
    "set_block": "{% set greeting %}  Hello {{ messages[0].role }}!  {% endset %}[{{ greeting }}] {% set t | trim | upper %}  shout  {% endset %}[{{ t }}] {% set a, b = 1, 2 %}{{ a }}{{ b }}",
    "macro": "{% macro tag(name, body='none', cls=none) -%}<{{ name }}{% if cls %} class=\"{{ cls }}\"{% endif %}>{{ body }}</{{ name }}>{%- endmacro %}{{ tag('b', 'x') }} {{ tag('i', cls='c') }} {{ tag(body=3, name='u') }} {% macro rec(n) %}{{ n }}{% if n > 0 %}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}",
    "call_block": "{% macro wrap(title) %}[{{ title }}: {{ caller() }}]{% endmacro %}{% call wrap('T') %}inner {{ messages | length }}{% endcall %} {% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(item) each([1, 2]) %}<{{ item }}>{% endcall %}",
    "filter_block": "{% filter upper %}hello {{ 'world' }}{% endfilter %} {% with a = 1, b = 'two' %}{{ a }}{{ b }}{% endwith %}",
    "string_filters": "{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'Hello' | upper }}{{ 'Hello' | lower }}|{{ 'hello wORLD-foo (bar' | title }}|{{ 'hELLO world' | capitalize }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'x' | replace('', '.') }}|{{ 5 | string }}{{ none | string }}|{{ '<a href=\"x\">&\\'</a>' | escape }}|{{ 'safe' | safe }}|{{ 'one two  three' | wordcount }}|{{ 'abc' | center(9) }}|{{ 'a%sb%05.1fc%dd%-4s|' | format('X', 3.14159, 42, 'y') }}",
    "length_first_last": "{{ messages | length }} {{ 'héllo' | length }} {{ {'a': 1} | count }} {{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | first }} {{ [] | first is undefined }} {{ undefined_var | length }} {{ (messages | first).role }}",
    "default_filter": "{{ undefined_var | default('dflt') }} {{ none | default('n') }} {{ '' | default('empty', true) }} {{ 0 | d('zero', boolean=true) }} {{ 'set' | default('x') }} {{ undefined_var | d }}|",
    "numbers_filters": "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ '0x1A' | int(base=16) }} {{ 3.99 | int }} {{ true | int }} {{ '2.5' | float }} {{ 'nope' | float }} {{ 3 | float }} {{ -5 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }} {{ [1, 2, 3.5] | sum }} {{ [3, 1, 2] | max }} {{ ['b', 'A', 'c'] | min }}",
    "list_filters": "{{ 'abc' | list }} {{ {'a': 1, 'b': 2} | list }} {{ [1, 2, 3] | join('-') }} {{ ['x', 1, none] | join }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ ['b', 'A', 'c'] | sort(case_sensitive=true, reverse=true) }} {{ [1, 2, 3] | reverse | list }} {{ 'abc' | reverse }} {{ ['a', 'A', 'b', 'a'] | unique | list }} {{ ['a', 'A'] | unique(case_sensitive=true) | list }} {{ {'b': 1, 'a': 2} | items | list }} {{ {'b': 1, 'A': 2, 'c': 0} | dictsort }} {{ {'b': 1, 'a': 2} | dictsort(by='value', reverse=true) }}",
    "select_map": "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(' | ') }} {{ messages | rejectattr('role', '==', 'user') | map(attribute='role') | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('divisibleby', 2) | list }} {{ [0, 1, '', 'a', none] | select | list }} {{ ['a', 'b'] | map('upper') | list }} {{ messages | map(attribute='missing', default='d') | list }} {{ [{'a': {'b': 7}}] | map(attribute='a.b') | list }} {{ messages | selectattr('role', 'in', ['system', 'assistant']) | list | length }} {{ [{'n': 2}, {'n': 1}] | sort(attribute='n') | map(attribute='n') | join }}",
    "tojson": "{{ {'b': [1, 2.5, true, none], 'a': 'é\"\\n<>&'} | tojson }} {{ [] | tojson }} {{ {} | tojson(indent=2) }} {{ {'k': [1, {'x': 'y'}], 'e': []} | tojson(indent=2) }} {{ 'x' | tojson }} {{ tools | tojson(indent='\\t', sort_keys=true) }} {{ {'a': 1} | tojson(separators=(',', ':')) }} {{ 'é' | tojson(ensure_ascii=true) }} {{ (1, 2) | tojson }} {{ 1e100 | tojson }}",
    "indent": "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(width='> ', blank=true) }}|{{ 'single' | indent(first=true) }}",
    "tests": "{{ x is defined }} {{ undefined_var is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is string }} {{ {} is mapping }} {{ [] is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ [] is sequence }} {{ 1 is number }} {{ 1.5 is number }} {{ true is boolean }} {{ 1 is boolean }} {{ 1 is integer }} {{ 1.0 is float }} {{ 'a' is equalto 'a' }} {{ 2 is eq 2 }} {{ 3 is gt 2 }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 1 is in [1, 2] }} {{ none is sameas none }} {{ true is true }} {{ range is callable }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ 1 is not none }} {{ not 1 is none }}",
    "subscripts": "{{ messages[0]['role'] }} {{ messages[-1].content[:5] }} {{ 'abcdef'[1:4] }} {{ 'abcdef'[::2] }} {{ 'abcdef'[::-1] }} {{ [1, 2, 3, 4][1:] }} {{ [1, 2, 3, 4][-2:] }} {{ [1, 2, 3][:-1] }} {{ 'héllo'[1] }} {{ [1, 2, 3][5] is undefined }} {{ {'a': {'b': 1}}.a.b }} {{ {'a': 1}['a'] }} {{ messages.0.role }} {{ 'abc'[10:] }}|{{ [1,2,3,4,5][4:1:-2] }}",
    "str_methods": "{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a b c'.rsplit(' ', 1) }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ 'hello wORLD'.title() }}{{ 'hELLO'.capitalize() }}|{{ 'aXbX'.replace('X', '-') }}|{{ 'héllo'.find('l') }}{{ 'abc'.find('z') }}{{ 'abab'.count('ab') }}|{{ '-'.join(['a', 'b']) }}|{{ '{} and {name}'.format('x', name='n') }}{{ '{0}{1}{0}'.format('a', 2) }}|{{ 'line1\\nline2\\r\\nline3'.splitlines() }}|{{ '42'.isdigit() }}{{ 'ab'.isalpha() }}{{ ' '.isspace() }}|{{ 'x'.center(5, '*') }}{{ 'x'.ljust(3, '.') }}{{ 'x'.rjust(3) }}",
    "dict_methods": "{% set d = {'b': 1, 'a': none} %}{{ d.get('b') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d['a'] }} {{ d.a is none }} {{ d.zz is defined }} {% for k, v in d | items %}{{ k }}{% endfor %} {{ dict(x=1, y='z') }} {{ dict(x=1).x }}",
    "ternary_concat": "{% for m in messages %}{{ ('[' ~ m.role ~ ']') if m.role != 'system' else '' }}{{ m.content | trim if m.content is string else '' }}{{ ', ' if not loop.last }}{% endfor %}",
    "raise": "{% if messages | length > 100 %}{{ raise_exception('too many') }}{% endif %}ok{{ raise_exception('Bad role: ' ~ messages[0].role) }}",
    "strftime": "{{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %b %Y') }}",
    "generation": "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}",
    "comments_newlines": "{# leading comment #}\nA\r\nB{# inline #}C\r{#- strip -#}\nD\n\n",
    "nested_data": "{% for m in messages %}{% for tc in m.tool_calls | default([]) %}{{ tc.function.name }}({% for k, v in tc.function.arguments.items() %}{{ k }}={{ v | tojson }}{{ ',' if not loop.last }}{% endfor %}) {% endfor %}{% endfor %}",
}


def feature_cases():
    ctx = {"messages": [SYSTEM, USER, ASSISTANT, {"role": "user", "content": "Tell me more about it, please."}],
           "tools": TOOLS, "documents": None, "add_generation_prompt": True,
           "bos_token": "<s>", "eos_token": "</s>", "x": 1}
    out = []
    for name in FEATURES:
        c = dict(ctx)
        if name == "nested_data":
            c["messages"] = TOOL_CALL_TURNS
        out.append((f"feature_{name}", "default", c))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", metavar="NAME=PATH",
                        help="GGUF path for a catalogue model (default: $DSPARK_HOME/models/NAME.gguf)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    paths = refs_common.parse_model_args(args.model)
    env = make_env()

    templates = {}
    cases = []  # (template name, case name, context)

    qwen3, _, qwen3_eos = hf_template("qwen3")
    templates["qwen3"] = qwen3
    llama3, llama3_bos, llama3_eos = hf_template("llama3")
    templates["llama3"] = llama3
    gemma3, gemma3_bos, gemma3_eos = hf_template("gemma3")
    templates["gemma3"] = gemma3
    templates["mistral_instruct_v0.1"] = MISTRAL_V01
    templates["smollm2"] = gguf_template(paths["smollm2-135m-instruct"])
    templates["qwen2.5_coder"] = gguf_template(paths["qwen2.5-coder-0.5b-instruct"])

    qwen_extra = [
        ("tools/gen=1", {"messages": TOOL_CALL_TURNS, "tools": TOOLS}),
        ("tools_system/gen=0", {"messages": [SYSTEM] + TOOL_CALL_TURNS, "tools": TOOLS,
                                "add_generation_prompt": False}),
        ("tool_call_string_args", {"messages": TOOL_CALL_STRING_ARGS, "tools": TOOLS}),
        ("tools_no_calls", {"messages": [USER], "tools": TOOLS}),
    ]
    qwen3_extra = qwen_extra + [
        ("thinking/gen=1", {"messages": THINKING}),
        ("thinking_tools", {"messages": THINKING + TOOL_CALL_STRING_ARGS[1:], "tools": TOOLS}),
        ("enable_thinking_false", {"messages": [USER], "enable_thinking": False}),
        ("enable_thinking_true", {"messages": [USER], "enable_thinking": True}),
    ]
    alternating = {k: v for k, v in CONVERSATIONS.items()}
    cases += [("qwen3",) + c[1:] for c in chat_cases("qwen3", None, qwen3_eos, CONVERSATIONS, qwen3_extra)]
    cases += [("qwen2.5_coder",) + c[1:]
              for c in chat_cases("qwen2.5_coder", None, "<|im_end|>", CONVERSATIONS, qwen_extra)]
    cases += [("llama3",) + c[1:] for c in chat_cases("llama3", llama3_bos, llama3_eos, CONVERSATIONS)]
    cases += [("smollm2",) + c[1:] for c in chat_cases("smollm2", "", "<|im_end|>", CONVERSATIONS)]
    gemma_extra = [
        ("content_parts", {"messages": GEMMA_PARTS}),
        ("not_alternating", {"messages": [USER, USER]}),
    ]
    cases += [("gemma3",) + c[1:] for c in chat_cases("gemma3", gemma3_bos, gemma3_eos, alternating, gemma_extra)]
    mistral_convs = {k: v for k, v in CONVERSATIONS.items() if k in ("user", "no_system_multi", "unicode")}
    mistral_extra = [("system_rejected", {"messages": [SYSTEM, USER]})]
    cases += [("mistral_instruct_v0.1",) + c[1:]
              for c in chat_cases("mistral_instruct_v0.1", "<s>", "</s>", mistral_convs, mistral_extra)]

    for tname, case_name, ctx in feature_cases():
        templates[tname] = FEATURES[tname[len("feature_"):]]
        cases.append((tname, case_name, ctx))

    out_cases = []
    for tname, case_name, ctx in cases:
        entry = {"name": f"{tname}/{case_name}", "template": tname, "context": ctx}
        if tname == "feature_strftime":
            entry["now_unix"] = int(NOW.timestamp())
        try:
            entry["expected"] = env.from_string(templates[tname]).render(**ctx)
        except jinja2.exceptions.TemplateSyntaxError:
            raise
        except jinja2.exceptions.TemplateError as e:
            entry["error"] = str(e)
        out_cases.append(entry)

    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"templates": templates, "cases": out_cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum("error" in c for c in out_cases)
    print(f"wrote {out}: {len(templates)} templates, {len(out_cases)} cases ({errors} expect errors), "
          f"{out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
