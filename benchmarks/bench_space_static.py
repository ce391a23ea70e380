"""The static Space in headless Chromium: cold start (page opened until the ECG encoder is loaded) and the time of one
analysis (read, preprocess, encode, score, draw), on the built folder served from a loopback HTTP server with the
headers a static Space sets.

Method. The folder is built by `space-static/build_space.py` from `--model` (e.g. the `make demo` output) or, by
default, from a randomly initialised model of `--preset` (`compact`, the demo's shape; random weights take the same
time as trained ones), with `--precision` encoders (`int8`, what `make space-static` ships). A fresh headless
Chromium (the Debian `chromium` + `chromium-driver`, `make browser`) opens the page; the page records
`performance.now()` when its ECG encoder is ready (`coldStartMs`, from navigation start: fetching the runtime and the
model from loopback, compiling the WebAssembly, creating the session) and the wall time of every analysis
(`analysisMs`). The three bundled PTB-XL examples are analysed `--rounds` times each (the first analysis of the
page is reported separately: it includes ONNX Runtime's first-run allocations); the median of the others is the
steady-state time per ECG. The text encoder loads in the background and is not on this path.

    python benchmarks/bench_space_static.py                                 # compact preset, int8
    python benchmarks/bench_space_static.py --model outputs/merit-ptbxl-sample --screenshot docs/space_static_screenshot.png
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import statistics
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


class StaticSpaceHandler(SimpleHTTPRequestHandler):
    """Serves a folder as a static Space does: cross-origin isolation headers (COOP/COEP, so that WASM threads work)
    and the MIME types module scripts and WebAssembly need."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
        ".json": "application/json", ".onnx": "application/octet-stream",
    }  # fmt: skip

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "cross-origin")
        super().end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(folder: str | Path):
    """Serves `folder` on 127.0.0.1 (a free port) in a thread; yields the URL of its `index.html`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(StaticSpaceHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def open_page(url: str, timeout_s: float = 180):
    """A headless Chromium with the page loaded and its ECG encoder ready; raises if the page reports a load error."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1250,1500"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, timeout_s).until(
            lambda browser: browser.execute_script(
                "return window.merit && (window.merit.ready || window.merit.loadError)"
            )
        )
        error = driver.execute_script("return window.merit.loadError")
        if error:
            raise RuntimeError(f"the page could not load its model: {error}")
    except BaseException:
        driver.quit()
        raise
    return driver


def page_action(
    driver, button: str, files: list | None = None, labels: list[str] | None = None, timeout_s=120
) -> dict:
    """Optionally sets the upload (`files`) and the labels, clicks `button` and waits until the page has finished;
    returns `{"result", "error", "messages"}` from `window.merit`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if files is not None:
        driver.execute_script("document.getElementById('upload').value = ''")
        driver.find_element(By.ID, "upload").send_keys("\n".join(str(path) for path in files))
    if labels is not None:
        driver.execute_script("document.getElementById('labels').value = arguments[0]", "\n".join(labels))
    done = driver.execute_script("window.merit.lastError = null; return window.merit.done || 0")
    driver.find_element(By.ID, button).click()
    WebDriverWait(driver, timeout_s).until(
        lambda browser: browser.execute_script("return window.merit.done || 0") > done
    )
    return driver.execute_script(
        "return {result: window.merit.lastResult, error: window.merit.lastError, messages: window.merit.messages}"
    )


def load_builder():
    spec = importlib.util.spec_from_file_location("build_space", REPO_ROOT / "space-static" / "build_space.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(
    model: str | None, preset: str, precision: str, rounds: int, screenshot: str | None, runtime_dir: str | None = None
) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-space-static-") as workdir:
        checkpoint = Path(model) if model else Path(workdir) / "checkpoint"
        if model is None:
            spec = importlib.util.spec_from_file_location("bench_onnx", REPO_ROOT / "benchmarks" / "bench_onnx.py")
            bench_onnx = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(bench_onnx)
            bench_onnx.save_random_checkpoint(preset, checkpoint)
        built = load_builder().build(checkpoint, Path(workdir) / "site", precision, runtime_dir)
        with serve(built["output_dir"]) as url:
            driver = open_page(url)
            try:
                cold_start_ms = driver.execute_script("return window.merit.timings.coldStartMs")
                threads = driver.execute_script("return window.merit.threads")
                examples = [
                    option.get_attribute("value") for option in driver.find_elements("css selector", "#example option")
                ]
                analyses = []
                for _ in range(rounds):
                    for example in examples:
                        driver.execute_script(
                            "document.getElementById('example').value = arguments[0]", example
                        )  # fmt: skip
                        answer = page_action(driver, "analyse-example")
                        if answer["error"]:
                            raise RuntimeError(f"analysing {example} failed: {answer['error']}")
                        analyses.append(answer["result"]["analysisMs"])
                if screenshot:
                    height = driver.execute_script("return document.documentElement.scrollHeight")
                    driver.set_window_size(1250, min(height + 40, 3000))
                    driver.save_screenshot(str(screenshot))
            finally:
                driver.quit()
    return {
        "model": model,
        "preset": None if model else preset,
        "precision": precision,
        "wasm_threads": threads,
        "cold_start_s": cold_start_ms / 1000,
        "first_analysis_s": analyses[0] / 1000,
        "analysis_median_s": statistics.median(analyses[1:] or analyses) / 1000,
        "analyses": len(analyses),
        "site_bytes": built["sizes"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: random --preset model)")
    parser.add_argument("--preset", default="compact")
    parser.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    parser.add_argument("--rounds", type=int, default=3, help="analyses of each of the three examples")
    parser.add_argument("--screenshot", default=None, help="save a screenshot of the page here")
    parser.add_argument("--runtime_dir", default=None, help="where the build runs `npm ci` (default: space-static/)")
    parser.add_argument("--output", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        parser.error("needs the Debian packages chromium and chromium-driver: `make browser` (as root)")
    result = run(args.model, args.preset, args.precision, args.rounds, args.screenshot, args.runtime_dir)
    print(
        f"static Space in headless Chromium ({args.model or args.preset + ' preset, random weights'}, "
        f"{args.precision} encoders, {result['wasm_threads']} WASM thread(s)):\n"
        f"  cold start (page opened -> ECG encoder ready) {result['cold_start_s']:.2f} s\n"
        f"  first analysis {result['first_analysis_s']:.3f} s; median of the next {result['analyses'] - 1}: "
        f"{result['analysis_median_s']:.3f} s per ECG\n"
        f"  site {result['site_bytes']['total'] / 1e6:.1f} MB (runtime {result['site_bytes']['vendor'] / 1e6:.1f} MB, "
        f"models {result['site_bytes']['models'] / 1e6:.1f} MB)"
    )
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
