"""``foveate demo``: one real question answered end to end, offline, with what it cost.

Until the embedded tiny VLM is trained (it ships in ``foveate/fixtures/tiny_vlm``), the
demo runs on a tiny *random-weight* LLaVA built from a config, and says so: its answers
are meaningless, but every step is real (image decoding, chat template, processor,
forward passes, logits, the token budget).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from foveate.vlm import TokenBudget, TokenLedger, VLMRequest

COLORS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (235, 200, 20)}


def demo_scene(path: Path, size: tuple[int, int] = (1600, 1200)) -> Path:
    """A large white image with one small red circle among grey distractor squares."""
    img = Image.new("RGB", size, (245, 245, 245))
    draw = ImageDraw.Draw(img)
    for i in range(40):
        x, y = (i * 397) % (size[0] - 60), (i * 263) % (size[1] - 60)
        draw.rectangle((x, y, x + 30, y + 30), fill=(150, 150, 150))
    draw.ellipse((1100, 300, 1140, 340), fill=COLORS["red"])
    img.save(path)
    return path


def run_demo(console: Console, *, model: str | None = None, endpoint: str | None = None) -> None:
    from foveate.cli.main import _load_vlm

    vlm = _load_vlm(model, endpoint)
    random_weights = model is None and endpoint is None
    if random_weights:
        console.print(
            "[bold yellow]NOTE:[/] the embedded default model is not trained yet, so this demo runs a tiny "
            "RANDOM-WEIGHT LLaVA built from a config. Its answers are meaningless; every step is real."
        )
    image = demo_scene(Path(tempfile.mkdtemp(prefix="foveate-demo-")) / "scene.png")
    question = "What is the color of the circle?"
    options = list(COLORS)
    budget = TokenBudget(max_visual_tokens_per_image=4096, max_total_tokens=20000)
    ledger = TokenLedger(budget)
    console.print(f"model: [bold]{vlm.model_id}[/]\nimage: {image} (1600x1200)\nquestion: {question}")

    request = VLMRequest.from_prompt(question, [image], budget=budget, max_new_tokens=8)
    generated = vlm.generate(request, ledger)
    scored = vlm.score(request, options, ledger)
    probe = VLMRequest.from_prompt(
        "Is there a red circle in the image? Answer Yes or No.", [image], budget=budget
    )
    yes = vlm.yes_probability(probe, ledger)

    table = Table(title="option scores (log-probabilities from real logits)")
    table.add_column("option")
    table.add_column("log-prob", justify="right")
    table.add_column("probability", justify="right")
    for opt, lp, p in zip(scored.options, scored.logprobs, scored.probabilities, strict=True):
        table.add_row(opt, f"{lp:.3f}", f"{p:.3f}")
    console.print(table)
    console.print(f"generated answer: [bold]{generated.text!r}[/] ({generated.finish_reason})")
    console.print(f"best option: [bold]{scored.best}[/]")
    console.print(f"P(Yes) that a red circle is present: {yes.p_yes:.3f} (confidence {yes.confidence:+.3f})")
    spent = ledger.spent
    console.print(
        f"tokens spent: {spent.visual_tokens} visual + {spent.text_tokens} text prompt + "
        f"{spent.generated_tokens} generated = {spent.total} of {budget.max_total_tokens}, "
        f"in {spent.forward_passes} forward passes"
    )
