"""The docs site short of Quarto: the sidebar that lists every notebook, and nbdev's processing of each of them.

    python .ci/docs.py

writes nbdev.yml (from pyproject.toml, as nbdev-docs does) and sidebar.yml (every notebook nbdev finds: the home
page, then the tutorials, then the library notebooks in order), processes every notebook into _proc/ as
`nbdev-proc-nbs` does (without its attempt to download and install Quarto when it is missing), and fails unless
each notebook came out processed. .ci/run then fails if nbdev.yml or sidebar.yml changed: after adding, renaming or
removing a notebook, run this and commit sidebar.yml. With Quarto installed, `nbdev-docs` builds the site into
_docs/ from the same files (_quarto.yml).
"""
import json, multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import yaml
from fastcore.parallel import defaults
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.processors import FilterDefaults
from nbdev.quarto import IndentDumper, refresh_quarto_yml
from nbdev.serve import proc_nbs
import nbdev.serve_drv

# folder -> sidebar section, in this order; other folders follow, titled by their names
SECTIONS = {"nbs/tutorials": "Tutorials", "nbs": "Library"}


def pages(root: Path) -> list:
    "The docs pages, as nbdev finds them (names starting with _ or . are left out), relative to `root`."
    found = nbglob(root, as_path=True, file_glob=None, file_re=r"\.(?:ipynb|qmd)$", skip_folder_re=r"^[_.]")
    return sorted(Path(p).relative_to(root) for p in found)


def sidebar(pages: list) -> str:
    "sidebar.yml for Quarto: top-level pages (index first), then one section per folder."
    def folder(p): return p.parent.as_posix()
    top = sorted((p.as_posix() for p in pages if folder(p) == "."), key=lambda s: (not s.startswith("index."), s))
    order = list(SECTIONS)
    folders = sorted({folder(p) for p in pages} - {"."}, key=lambda d: (order.index(d) if d in order else len(order), d))
    contents = top + [{"section": SECTIONS.get(d, Path(d).name.replace("_", " ").capitalize()),
                       "contents": [p.as_posix() for p in pages if folder(p) == d]} for d in folders]
    return yaml.dump({"website": {"sidebar": {"contents": contents}}}, Dumper=IndentDumper, sort_keys=False)


def problem(cache: Path, page: Path):
    "What is wrong with a processed page (None if nothing): missing, unreadable, or a notebook without its title."
    f = cache / page
    if not f.exists(): return f"no processed output ({f} is missing)"
    if page.suffix != ".ipynb": return None
    try: cells = json.loads(f.read_text())["cells"]
    except (ValueError, KeyError) as e: return f"the processed output is not a notebook ({e})"
    if not cells or cells[0]["cell_type"] != "raw" or "title:" not in "".join(cells[0]["source"]):
        return "processed without a title: start the notebook with a markdown cell `# Title` and `> summary`"


def main():
    cfg = get_config()
    os.chdir(cfg.config_path)
    refresh_quarto_yml()                                   # nbdev.yml from pyproject.toml (_quarto.yml is ours)
    found = pages(cfg.nbs_path)
    (cfg.nbs_path / "sidebar.yml").write_text(sidebar(found))
    start, cache = time.time(), cfg.config_path / "_proc"
    try: proc_nbs(cfg.nbs_path, n_workers=defaults.cpus, force=True)
    except Exception as e: print(f"docs: nbdev-proc-nbs stopped at the first error; processing the rest one by one ({str(e).splitlines()[0]})")
    bad = {p: why for p in found if (why := problem(cache, p))}
    if bad:   # nbdev stops at the first failure: process each unprocessed notebook alone to name every failure and its cell
        todo = [p for p in bad if p.suffix == ".ipynb"]
        with ProcessPoolExecutor(defaults.cpus, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {p: pool.submit(nbdev.serve_drv.main, (cfg.nbs_path / p, cache / p, FilterDefaults)) for p in todo}
        for p, f in futures.items():
            if f.exception(): bad[p] = str(f.exception()).strip()
            elif not (why := problem(cache, p)): bad.pop(p)
            else: bad[p] = why
    print(f"docs: {len(found) - len(bad)} of {len(found)} pages processed into {cache.relative_to(cfg.config_path)}/ "
          f"in {time.time() - start:.0f} s; sidebar.yml lists all {len(found)}")
    if bad: sys.exit("docs: these pages did not process:\n" + "".join(f"  {p}: {why}\n" for p, why in bad.items()))


if __name__ == "__main__":
    main()
