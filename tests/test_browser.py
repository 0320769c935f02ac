"""The panels in a real browser: JupyterLab + Chromium driven by Playwright.

Opens tests/_widgets_tour.ipynb, runs all cells, changes a value in the config panel, trains a few GRPO steps on
the tiny model with the Train button, and checks that the curves were redrawn and the sample inspector has rows.
Screenshots are kept under tests/artifacts/ (git-ignored).
"""
import json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent
NB = HERE / "_widgets_tour.ipynb"
ART = HERE / "artifacts"
BIN = Path(sys.executable).parent


def _chromium():
    for c in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and Path(c).exists(): return c
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A fresh JupyterLab server on loopback, from this virtual environment, with its own settings; stopped afterwards."
    if not (BIN / "jupyter-lab").exists(): pytest.skip(f"jupyter-lab is not installed in {BIN} (pip install jupyterlab)")
    work = tmp_path_factory.mktemp("lab")
    shutil.copy(NB, work / NB.name)
    settings = work / "labsettings"
    (settings / "@jupyterlab/apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    # render every cell (JupyterLab 4 otherwise defers off-screen cells, which Playwright reads as not visible)
    (settings / "@jupyterlab/notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "ALIGNTUNE_QUIET": "1", "PYTHONPATH": str(HERE.parent)}
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "jupyter-lab"), "--no-browser", f"--port={port}", "--ServerApp.port_retries=0", "--ip=127.0.0.1",
                             "--allow-root", f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None: pytest.fail(f"jupyter-lab exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                if urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).status == 200: break
            except OSError: time.sleep(0.5)
        else: pytest.fail("jupyter-lab did not answer within 60 s")
        yield dict(url=url, token=token, work=work)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(15)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        log.close()
        ART.mkdir(exist_ok=True); shutil.copy(work / "server.log", ART / "jupyter-server.log")


def test_panels_in_jupyterlab(lab):
    chromium = _chromium()
    if chromium is None: pytest.skip("Chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chromium)")
    from playwright.sync_api import sync_playwright
    ART.mkdir(exist_ok=True)
    console = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                                    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.goto(f"{lab['url']}/lab/tree/{NB.name}?reset&token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=60_000)   # the kernel is really up
            page.click(".lm-MenuBar-item:has-text('Run')")
            page.click(".lm-Menu-item[data-command='runmenu:run-all']")

            # the panels render as widgets, not as their text fallback
            train_btn = page.locator(".aligntune-train-panel button.widget-button:has-text('Train')")
            train_btn.wait_for(timeout=90_000)
            page.wait_for_selector(".aligntune-run-compare", timeout=60_000)
            page.wait_for_selector(".aligntune-eval-view", timeout=60_000)
            text = page.inner_text(".jp-Notebook")
            assert "VBox(children" not in text and "Loading widget" not in text, text[:2000]
            cfgp = page.locator(".aligntune-config-panel")
            assert cfgp.count() == 1 and page.locator(".aligntune-sample-inspector").count() == 2   # the inspector cell + the panel's tab
            assert cfgp.locator(".widget-dropdown select").first.input_value() == "GRPO"   # the algorithm's title from the table
            page.screenshot(path=str(ART / "01_after_run_all.png"), full_page=False)

            # change a value in the config panel: max steps 4 -> 6; the YAML follows
            cfgp.scroll_into_view_if_needed()
            steps = cfgp.locator(".widget-inline-hbox:has(label:has-text('max steps')) input")
            steps.fill("6"); steps.press("Enter")
            page.wait_for_function("() => [...document.querySelectorAll('.aligntune-config-panel pre')].some(e => e.textContent.includes('max_steps: 6'))",
                                   timeout=15_000)
            cfgp.scroll_into_view_if_needed()
            cfgp.screenshot(path=str(ART / "02_config_panel_max_steps_6.png"))

            # train from the panel; the curves image appears, then changes
            panel = page.locator(".aligntune-train-panel")
            train_btn.click()
            img = panel.locator("img").first
            img.wait_for(state="attached", timeout=90_000)
            page.wait_for_function("() => { const i = document.querySelector('.aligntune-train-panel img'); return i && i.src && i.naturalWidth > 0 }",
                                   timeout=90_000)
            first_src = img.get_attribute("src")
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(ART / "03_training_live.png"))
            page.wait_for_function("() => /finished|stopped|failed/.test(document.querySelector('.aligntune-train-panel').innerText)", timeout=120_000)
            status = panel.inner_text()
            assert "failed" not in status and "Error" not in status, status[:3000]
            assert "finished" in status and "step 6/6" in status, status[:1000]
            assert img.get_attribute("src") != first_src, "the curves were not redrawn"
            updates = int(status.split(" plot updates")[0].rsplit("·", 1)[-1].strip())
            assert updates >= 2, status
            panel.screenshot(path=str(ART / "04_training_finished_curves.png"))

            # the samples tab of the panel has rows with per-reward scores
            panel.locator(".lm-TabBar-tab:has-text('samples')").click()
            insp = panel.locator(".aligntune-sample-inspector")
            insp.locator("table tbody tr").first.wait_for(timeout=15_000)
            n_rows = insp.locator("table tbody tr").count()
            head = insp.locator("table thead").inner_text()
            assert n_rows > 0 and "r:exact_match" in head and "r:length" in head and "advantage" in head, head
            panel.screenshot(path=str(ART / "05_samples_tab.png"))
            page.screenshot(path=str(ART / "06_page.png"), full_page=True)
        finally:
            (ART / "browser-console.log").write_text("\n".join(console))
            browser.close()
