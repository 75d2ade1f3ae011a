"""``foveate demo``: one real question about a generated scene, answered end to end, offline.

It runs on the embedded tiny VLM (``foveate.tiny_vlm.TINY_VLM_PATH``), or on ``--model`` /
``--endpoint``. The question is asked twice: on the whole 2000 px scene, where the small target is
a few pixels once the model shrinks the image, and on a crop around the target, which is what
zoom search has to find by itself. Every number comes from real logits, and the token ledger
shows what the question cost.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from rich.console import Console
from rich.table import Table

from foveate.evaluation.fixture import native_crop
from foveate.synthetic import SceneItem, generate_scene
from foveate.tiny_vlm.tasks import EXISTENCE, object_name
from foveate.vlm import TokenBudget, TokenLedger, VLMRequest

if TYPE_CHECKING:
    from foveate.agent import Agent


def run_demo(
    console: Console, *, model: str | None = None, endpoint: str | None = None, seed: int = 42, index: int = 0
) -> None:
    from foveate.cli.common import load_model, settings_from
    from foveate.tiny_vlm import tiny_vlm_available

    settings = settings_from(model=model, endpoint=endpoint)
    vlm = load_model(settings)
    if settings.model is None and settings.endpoint is None:
        if tiny_vlm_available():
            console.print("model: the embedded tiny VLM (trained on synthetic scenes; offline)")
        else:
            console.print(
                "[bold yellow]NOTE:[/] the embedded tiny VLM is not in this checkout, so this demo runs a "
                "tiny RANDOM-WEIGHT LLaVA built from a config. Its answers are meaningless; every step "
                "is real."
            )
    image, item = generate_scene(seed, index)
    folder = Path(tempfile.mkdtemp(prefix="foveate-demo-"))
    scene_path = folder / "scene.png"
    image.save(scene_path)
    crop = native_crop(image, item, 128)
    crop_path = folder / "crop.png"
    crop.save(crop_path)
    target = item.targets[0]
    budget = TokenBudget(max_total_tokens=20_000)
    ledger = TokenLedger(budget)
    console.print(f"model id: [bold]{vlm.model_id}[/]")
    console.print(
        f"scene: {scene_path} ({image.width}x{image.height}); the {target.shape} is {target.size} px wide"
    )
    console.print(f"question: [bold]{item.question}[/]  options: {', '.join(item.options)}")

    table = Table(title="option probabilities (from the model's log-probabilities)")
    table.add_column("view")
    for option in item.options:
        table.add_column(option, justify="right")
    table.add_column("answer")
    table.add_column("P(Yes) target visible", justify="right")
    probe = EXISTENCE.format(obj=object_name(target))
    for name, view in (("whole image", scene_path), ("crop around the target", crop_path)):
        scored = vlm.score(VLMRequest.from_prompt(item.question, [view]), item.options, ledger)
        seen = vlm.yes_probability(VLMRequest.from_prompt(probe, [view]), ledger)
        mark = "[green]right[/]" if scored.best == item.answer else "[red]wrong[/]"
        table.add_row(
            name, *(f"{p:.2f}" for p in scored.probabilities), f"{scored.best} ({mark})", f"{seen.p_yes:.2f}"
        )
    console.print(table)
    answer = vlm.generate(VLMRequest.from_prompt(item.question, [crop_path], max_new_tokens=4), ledger)
    console.print(
        f"generated answer on the crop: [bold]{answer.text!r}[/]; ground truth: [bold]{item.answer}[/]"
    )
    console.print(
        "The crop here is cut around the known target to show the gap; finding it without being told "
        "is the zoom agent's job."
    )
    spent = ledger.spent
    console.print(
        f"tokens spent: {spent.visual_tokens} visual + {spent.text_tokens} text prompt + "
        f"{spent.generated_tokens} generated = {spent.total} of {budget.max_total_tokens}, "
        f"in {spent.forward_passes} forward passes"
    )
    from foveate.agent import Agent

    # the defaults a user gets (Agent.from_defaults): the full workflow and, for the embedded model, the
    # abstention gate it ships for that workflow; memory and checkpoints stay in the demo's folder
    with Agent.from_defaults(
        settings=settings, vlm=vlm, workflow="full", memory=folder / "memory.db", checkpoints=None
    ) as agent:
        run_workflow_part(console, agent, image, scene_path, item)
        run_gate_part(console, agent, seed, index)


def run_workflow_part(
    console: Console, agent: Agent, image: Image.Image, scene_path: Path, item: SceneItem
) -> None:
    """The same question through the ``full`` workflow (given the scene's file, as a user would):
    it has to find the target by itself. ``image`` is that scene, already in memory, for the trace."""
    from foveate.imaging.boxes import Box
    from foveate.imaging.draw import save_trace
    from foveate.zoom import Visit

    folder = scene_path.parent
    console.print(
        "\n[bold]The `full` workflow[/] (perceive, recall, zoom, reason, judge, abstain, remember):"
    )
    run_id = None
    for event in agent.stream(item.question, scene_path, item.options):
        run_id = event.run_id
        for text in event.messages:
            console.print(f"  [cyan]{event.node}[/] {text}", highlight=False)
    assert run_id is not None
    answer = agent.answer(run_id)
    state = agent.workflow.state(run_id)
    agent.feedback(run_id, answer=item.answer)  # the ground truth: now the run can teach something
    assert agent.memory is not None
    lessons = [i.text for i in agent.memory.insights()]
    truth = item.answer
    mark = "[green]right[/]" if answer.option == truth else "[red]wrong[/]"
    p = answer.confidence or 0.0
    if answer.abstained:
        console.print(
            f"workflow abstained: {answer.reason}; its choice was [bold]{answer.option}[/] ({mark}; "
            f"p = {p:.2f}); ground truth: [bold]{truth}[/]"
        )
    else:
        console.print(
            f"workflow answer: [bold]{answer.text}[/] ({mark}; p = {p:.2f}); ground truth: [bold]{truth}[/]"
        )
    box = state.get("answer_box")
    if box:
        x0, y0, x1, y1 = box
        inside = [
            t for t in item.targets if x0 <= t.box[0] and y0 <= t.box[1] and t.box[2] <= x1 and t.box[3] <= y1
        ]
        share = (x1 - x0) * (y1 - y0) / (image.width * image.height)
        console.print(
            f"it {'looked at' if answer.abstained else 'answered from'} the crop {box} ({share:.1%} of "
            f"the image), which {'holds' if inside else 'misses'} the target"
        )
        crop_box: Box = (x0, y0, x1, y1)
        visits = [Visit.model_validate(v) for v in state.get("visits") or []]
        trace = save_trace(image, visits, folder / "trace.png", crop_box)
        console.print(f"search trace picture: {trace}")
    u = answer.tokens
    console.print(
        f"workflow tokens: {u.visual_tokens} visual + {u.text_tokens} text + {u.generated_tokens} generated "
        f"= {u.total}; {answer.probes} probes; {answer.latency_s:.1f} s; run id {answer.run_id}"
    )
    for text in lessons:
        console.print(f"lesson stored after feedback: {text}", highlight=False)


def run_gate_part(console: Console, agent: Agent, seed: int, index: int, most: int = 24) -> None:
    """More scenes through the same agent until its abstention gate has withheld one answer (and given
    one): what the gate decided, why, and whether the withheld answer would have been right."""
    gate = agent.calibration
    if gate is None:
        console.print(
            "\nabstention gate: none loaded, so every answer above came without a guarantee "
            "(calibrate one with `foveate calibrate`)"
        )
        return
    console.print(
        f"\n[bold]The abstention gate[/] ({type(gate).__name__}, alpha {gate.alpha:g}, calibrated on "
        f"this model's own answers through this workflow): more scenes until it withholds one answer"
    )
    answered = abstained = 0
    for i in range(index + 1, index + 1 + most):
        image, item = generate_scene(seed, i)
        answer = agent.ask(item.question, image=image, options=item.options, category=item.category)
        right = answer.option == item.answer
        mark = "[green]right[/]" if right else "[red]wrong[/]"
        if answer.abstained:
            abstained += 1
            console.print(
                f"  scene {i}: [yellow]abstained[/]: {answer.reason}; "
                f"its choice was {answer.option} ({mark})",
                highlight=False,
            )
        else:
            answered += 1
            kept = f"; prediction set {answer.prediction_set}" if answer.prediction_set else ""
            console.print(f"  scene {i}: answered {answer.text} ({mark}{kept})", highlight=False)
        if answered and abstained:
            break
