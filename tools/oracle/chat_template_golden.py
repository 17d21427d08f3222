#!/usr/bin/env python3
"""Golden chat-template renderings from Python jinja2, in the environment transformers'
apply_chat_template uses (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
raise_exception, tojson without ASCII escaping, the special tokens as variables).

Writes testdata/model/chat_template.json. The model templates are read from ../shared at run time
(their SHA-256 is recorded so the Go test can tell a changed template from a rendering bug); a few
other common template styles are stored inline to exercise more of the Jinja language.

Usage: python3 tools/oracle/chat_template_golden.py [--shared ../shared] [--out testdata/model/chat_template.json]
"""
import argparse
import hashlib
import json
import os

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def token(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def model_template(model_dir):
    with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        tc = json.load(f)
    src = tc["chat_template"]
    if isinstance(src, list):
        src = next(t["template"] for t in src if t["name"] == "default")
    variables = {}
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if tc.get(name) is not None:
            variables[name] = token(tc[name])
    return src, variables


# Other templates in common use, to exercise more Jinja than the TinyLlama template does.
INLINE_TEMPLATES = {
    "chatml": {
        "template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "variables": {"bos_token": "<s>", "eos_token": "<|im_end|>"},
    },
    "llama2": {
        "template": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
        "variables": {"bos_token": "<s>", "eos_token": "</s>"},
    },
    "llama3": {
        "template": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
        "variables": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    },
    "gemma": {
        "template": "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
        "variables": {"bos_token": "<bos>", "eos_token": "<eos>"},
    },
    "namespace_counts": {
        "template": "{%- set ns = namespace(users=0) -%}\n{%- for m in messages -%}\n  {%- if m.role == 'user' %}{% set ns.users = ns.users + 1 %}{% endif -%}\n  [{{ loop.index }}/{{ messages | length }}] {{ m.role | upper }}: {{ m.content }}\n{% endfor -%}\nusers={{ ns.users }}{% if add_generation_prompt %} >{% endif %}",
        "variables": {"bos_token": "<s>", "eos_token": "</s>"},
    },
    "zephyr_multiline": {
        "template": "{% for message in messages %}\n    {% if message['role'] == 'user' %}\n        {{ '<|user|>\n' + message['content'] + eos_token }}\n    {% elif message['role'] == 'system' %}\n        {{ '<|system|>\n' + message['content'] + eos_token }}\n    {% elif message['role'] == 'assistant' %}\n        {{ '<|assistant|>\n'  + message['content'] + eos_token }}\n    {% endif %}\n    {% if loop.last and add_generation_prompt %}\n        {{ '<|assistant|>' }}\n    {% endif %}\n{% endfor %}\n",
        "variables": {"bos_token": "<s>", "eos_token": "</s>"},
    },
}

SYSTEM = "You are a careful medical information assistant. You do not diagnose."
CONVERSATIONS = {
    "system_user_assistant": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is hypertension?"},
        {"role": "assistant", "content": "Hypertension is persistently high blood pressure."},
    ],
    "system_user": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What does an ACE inhibitor do?"},
    ],
    "user_only": [
        {"role": "user", "content": "Hello"},
    ],
    "multi_turn": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is anemia?"},
        {"role": "assistant", "content": "A shortage of healthy red blood cells."},
        {"role": "user", "content": "What causes it?"},
        {"role": "assistant", "content": "Iron deficiency is the most common cause."},
        {"role": "user", "content": "How is it treated?"},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français, s'il te plaît — ça va ?"},
        {"role": "user", "content": "頭痛がします 🤕 مرحبا، أشعر بالصداع \u0301e\u0301 \u00a0nbsp\u200bzwsp"},
        {"role": "assistant", "content": "🩺 Drink water 💧; 如果持续，请就医。"},
    ],
    "template_syntax_in_content": [
        {"role": "system", "content": "{{ eos_token }} {% if true %}x{% endif %} {# c #}"},
        {"role": "user", "content": "Say </s> then <s> and <|assistant|> please {{ '}}' }}"},
        {"role": "assistant", "content": "</s><s><unk> {%- raw %}"},
    ],
    "assistant_first": [
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "I have a cough."},
    ],
    "whitespace": [
        {"role": "system", "content": ""},
        {"role": "user", "content": "  leading and trailing spaces  \n\n"},
        {"role": "assistant", "content": "\ttab\r\nline\n"},
    ],
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "model", "chat_template.json"))
    args = ap.parse_args()
    env = environment()

    templates = {}
    for model in ("tinyllama-1.1b-chat-v1.0", "stories260K"):
        src, variables = model_template(os.path.join(args.shared, "models", model))
        templates[model] = {
            "model_dir": "models/" + model,
            "template_sha256": hashlib.sha256(src.encode("utf-8")).hexdigest(),
            "source": src,
            "variables": variables,
        }
    for name, t in INLINE_TEMPLATES.items():
        templates[name] = dict(t)
    cases = render_all(env, templates)
    for t in templates.values():
        t.pop("source", None)  # model templates are read from ../shared, not stored here

    out = {
        "generator": "tools/oracle/chat_template_golden.py",
        "jinja2_version": jinja2.__version__,
        "templates": templates,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {args.out}")


def render_all(env, templates):
    cases = []
    for tname, t in templates.items():
        compiled = env.from_string(t.get("template") or t["source"])
        for cname, msgs in CONVERSATIONS.items():
            for gen in (False, True):
                case = {"template": tname, "conversation": cname, "add_generation_prompt": gen}
                try:
                    case["output"] = compiled.render(messages=msgs, add_generation_prompt=gen, **t["variables"])
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    return cases


if __name__ == "__main__":
    main()
