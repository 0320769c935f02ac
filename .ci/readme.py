"""Render README.md from index.ipynb (markdown cells and code with their text outputs); --check fails when stale.

`--command fast` / `--command full` prints the README's test command of that tier (.ci/run runs the full one).
"""
import sys, json, re
from pathlib import Path

# The sentence that introduces each test command in the README; the command is the bash block right after it.
INTROS = {"fast": "Run the fast tests", "full": "Run all tests"}
FAST_SELECTION = '-m "not slow and not browser and not network"'

def render(nb_path="index.ipynb") -> str:
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb["cells"]:
        src = "".join(c["source"]).strip()
        if not src or src.startswith("#| hide") or "#| hide" in src.splitlines()[0:1]: continue
        if c["cell_type"] == "markdown": out.append(src)
        elif c["cell_type"] == "code":
            lines = [l for l in src.splitlines() if not l.startswith("#|")]
            out.append("```python\n" + "\n".join(lines) + "\n```")
            texts = []
            for o in c.get("outputs", []):
                if o.get("output_type") == "stream": texts.append("".join(o["text"]))
                elif "data" in o and "text/markdown" in o["data"]: out.append("".join(o["data"]["text/markdown"]))
                elif "data" in o and "text/plain" in o["data"] and "image/png" not in o["data"] and "application/vnd.jupyter.widget-view+json" not in o["data"]:
                    texts.append("".join(o["data"]["text/plain"]))
            if texts: out.append("```\n" + "".join(texts).rstrip() + "\n```")
    return "<!-- Generated from index.ipynb by .ci/readme.py; edit the notebook, not this file. -->\n\n" + "\n\n".join(out) + "\n"

def commands(text: str) -> dict:
    "The test commands in the README text, by tier; exits with a message when one is missing or selects the wrong tests."
    found = {}
    for tier, intro in INTROS.items():
        m = re.search(re.escape(intro) + r"[^\n]*\n+```bash\n(.+?)\n```", text)
        if not m: sys.exit(f"README.md has no {tier} test command: a line starting {intro!r} followed by a ```bash block.")
        found[tier] = m.group(1).strip()
    if FAST_SELECTION not in found["fast"]: sys.exit(f"The fast test command must select {FAST_SELECTION}: {found['fast']}")
    if re.search(r"pytest\b.*(\s-m\s|--deselect|\s-k\s)", found["full"]) or "--flags slow" not in found["full"]:
        sys.exit(f"The full test command must run every test and the notebooks' slow cells (nbdev-test --flags slow): {found['full']}")
    return found

if __name__ == "__main__":
    if "--command" in sys.argv:
        print(commands(Path("README.md").read_text())[sys.argv[sys.argv.index("--command") + 1]])
        sys.exit()
    text = render()
    commands(text)
    if "--check" in sys.argv:
        if Path("README.md").read_text() != text:
            sys.exit("README.md is out of date with index.ipynb: run `python .ci/readme.py` and commit README.md.")
        print("README.md is up to date with index.ipynb")
    else:
        Path("README.md").write_text(text)
