"""Render README.md from index.ipynb (markdown cells and code with their text outputs); --check fails when stale."""
import sys, json
from pathlib import Path

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

if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        if Path("README.md").read_text() != text:
            sys.exit("README.md is out of date with index.ipynb: run `python .ci/readme.py` and commit README.md.")
        print("README.md is up to date with index.ipynb")
    else:
        Path("README.md").write_text(text)
