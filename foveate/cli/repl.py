"""The chat REPL: one line at a time, the slash commands, and what a person sees after each answer.

The REPL is the :class:`ChatREPL` class: it takes one line at a time and prints through a rich
``Console``, so it runs the same behind prompt_toolkit (a terminal: history, completion), behind a pipe
(plain lines from stdin) and in tests (a ``Console`` writing to a ``StringIO``). It never shows a
traceback: every failure of a line is one red ``error:`` line and the loop goes on, because a person
exploring images should not lose their session to a typo in a path.

The model is loaded lazily by an ``agent_factory`` (the command loads it up front and says so), so
parsing, completion and error handling do not pay for a model.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from rich.console import Console
from rich.markup import escape

from foveate.cli.trace_view import crop_visits, why_lines
from foveate.errors import ChatError, FoveateError

if TYPE_CHECKING:
    from foveate.agent import Agent, Answer
    from foveate.graphs.spec import WorkflowSpec
    from foveate.graphs.workflow import NodeEvent, SearchProgress

__all__ = ["COMMANDS", "ChatREPL", "SlashCompleter", "history_path", "parse_budget", "parse_question"]

HISTORY_ENV = "FOVEATE_CHAT_HISTORY"

COMMANDS: dict[str, str] = {
    "/image": "PATH...  load image(s); questions are asked about the last one (no PATH: list them)",
    "/options": "a,b,c  answer options for the next questions (sticky; 'off': free text)",
    "/workflow": "NAME|FILE  direct, zoom, full, or a workflow YAML file",
    "/budget": "N  cap on all tokens per question ('off': no cap; no N: show it)",
    "/why": "the last answer's trace: crops, confidence, prediction set, abstention, recalled insights",
    "/show": "write the picture of what the last run looked at, and print its path",
    "/feedback": "right|wrong [the right answer]  tell the agent how the last answer went",
    "/answer": "TEXT  your answer: to a run that paused for you, or the right one after an abstention",
    "/answer-anyway": "the model's candidate when it abstained (a paused run takes it as the answer)",
    "/memory": "how many insights the memory holds, and the 5 most recent",
    "/help": "this list",
    "/quit": "leave (also Ctrl-D)",
}

_INLINE_OPTIONS = re.compile(r"^(?P<q>.*?)\s*\[(?P<opts>[^\[\]]*)\]\s*$")


def history_path() -> Path:
    """``$FOVEATE_CHAT_HISTORY``, else ``~/.foveate/chat_history``."""
    return Path(os.environ.get(HISTORY_ENV) or Path.home() / ".foveate" / "chat_history")


def split_options(text: str) -> list[str]:
    return [o.strip() for o in text.split(",") if o.strip()]


def parse_question(line: str) -> tuple[str, list[str] | None]:
    """``"What colour? [red, blue]"`` -> the question and its options (None: no inline options)."""
    match = _INLINE_OPTIONS.match(line.strip())
    if match and match["q"]:
        return match["q"], split_options(match["opts"])
    return line.strip(), None


def parse_budget(arg: str) -> int | None:
    """``/budget`` argument: a positive whole number of tokens, or ``off`` (None: no cap)."""
    if arg.lower() in ("off", "none"):
        return None
    if not arg.isdigit() or int(arg) < 1:
        raise ChatError(f"/budget takes a positive whole number of tokens or 'off', not {arg!r}")
    return int(arg)


class SlashCompleter(Completer):
    """Completes command names, then paths after ``/image``, workflow names or files after ``/workflow``."""

    def __init__(self) -> None:
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        if " " not in text:
            for name, about in COMMANDS.items():
                if name.startswith(text):
                    yield Completion(name, start_position=-len(text), display_meta=about.split("  ")[0])
            return
        command, _, rest = text.partition(" ")
        word = rest.rsplit(" ", 1)[-1]
        words = {"/workflow": ["direct", "zoom", "full"], "/feedback": ["right", "wrong"], "/budget": ["off"]}
        for choice in words.get(command, []):
            if choice.startswith(word) and " " not in rest:
                yield Completion(choice, start_position=-len(word))
        if command in ("/image", "/workflow"):
            yield from self.paths.get_completions(Document(word, len(word)), complete_event)


class ChatREPL:
    """The chat loop's state and commands. ``handle(line)`` acts on one line; False means quit."""

    def __init__(
        self,
        console: Console,
        agent_factory: Callable[[str | Path], Agent],
        *,
        workflow: str | Path = "full",
        trace_dir: Path | None = None,
    ) -> None:
        self.console = console
        self.agent_factory = agent_factory
        self.agent: Agent | None = None
        self.workflow: str | Path = workflow
        self.images: list[Path] = []
        self.options: list[str] | None = None
        self.max_total_tokens: int | None = None
        self.last: Answer | None = None
        self.last_spec: WorkflowSpec | None = None
        self.waiting: str | None = None  # a run paused for the person's answer
        self.trace_dir = trace_dir
        self._check_workflow(workflow)

    # ------------------------------------------------------------------ the loop
    @property
    def prompt(self) -> str:
        return "your answer (empty: let it abstain)> " if self.waiting else "foveate> "

    def handle(self, line: str) -> bool:
        """Act on one line; print one red line on any error. Returns False when the person quits."""
        try:
            return self._dispatch(line.strip())
        except KeyboardInterrupt:
            self._error("interrupted")
        except (FoveateError, OSError, ValueError) as exc:
            self._error(str(exc) or type(exc).__name__)
        except Exception as exc:  # never a traceback in front of a person: say what broke, go on
            self._error(f"{type(exc).__name__}: {exc}")
        return True

    def run(self, lines: Iterable[str]) -> int:
        """Feed lines until ``/quit`` or the end; the exit code (0)."""
        for line in lines:
            if not self.handle(line):
                break
        return 0

    def load(self) -> Agent:
        """The agent, loaded on first use with the current workflow."""
        if self.agent is None:
            self.agent = self.agent_factory(self.workflow)
        return self.agent

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()
            self.agent = None

    def _error(self, message: str) -> None:
        message = " / ".join(part.strip() for part in message.splitlines() if part.strip())  # one line
        self.console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)

    def _say(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)

    def _dispatch(self, line: str) -> bool:
        if not line.startswith("/"):
            if self.waiting:
                self._resume(line or None)
            elif line:
                self._ask(*parse_question(line))
            return True
        command, _, arg = line.partition(" ")
        command, arg = command.lower(), arg.strip()
        if command in ("/quit", "/exit", "/q"):
            return False
        handlers: dict[str, Callable[[str], None]] = {
            "/image": self._image,
            "/options": self._options,
            "/workflow": self._workflow,
            "/budget": self._budget,
            "/why": lambda _: self._why(),
            "/show": lambda _: self._show(),
            "/feedback": self._feedback,
            "/answer": self._answer_given,
            "/answer-anyway": lambda _: self._answer_anyway(),
            "/memory": lambda _: self._memory(),
            "/help": lambda _: self._help(),
        }
        if command not in handlers:
            raise ChatError(f"unknown command {command}; /help lists them")
        handlers[command](arg)
        return True

    # ------------------------------------------------------------------ settings
    def add_image(self, path: Path) -> None:
        """Load an image to ask about (questions go to the last one); ``ImageLoadError`` naming a bad one."""
        from foveate.imaging.images import load_image

        with load_image(path) as image:  # missing or corrupt: ImageLoadError naming the file
            size = image.size
        self.images.append(path)
        self._say(f"image {len(self.images)}: {escape(str(path))} ({size[0]}x{size[1]})")

    def _image(self, arg: str) -> None:
        if not arg:
            if not self.images:
                raise ChatError("no image yet: load one with /image PATH")
            for i, path in enumerate(self.images, 1):
                self._say(
                    f"{i}. {escape(str(path))}"
                    + ("  <- questions go here" if path == self.images[-1] else "")
                )
            return
        for word in shlex.split(arg):
            self.add_image(Path(word).expanduser())
        if len(self.images) > 1:
            self._say(f"{len(self.images)} images loaded; questions are asked about the last one")

    def _options(self, arg: str) -> None:
        if arg.lower() in ("off", "none", "-"):
            self.options = None
        elif arg:
            self.options = split_options(arg)
            if len(self.options) < 2:
                raise ChatError("give at least two options, comma-separated: /options red,green,blue")
        self._say(
            "options: " + (escape(", ".join(self.options)) if self.options else "none (free-text answers)")
        )

    def _check_workflow(self, name: str | Path) -> Any:
        from foveate.graphs.nodes import builtin_registry
        from foveate.graphs.workflow import resolve_workflow

        return resolve_workflow(name, builtin_registry())  # bad name or YAML: GraphSpecError

    def _workflow(self, arg: str) -> None:
        if not arg:
            self._say(f"workflow: {escape(str(self.workflow))}")
            return
        spec = self._check_workflow(arg)
        if self.agent is not None:
            from foveate.graphs.workflow import Workflow

            old = self.agent.workflow
            # by its name or file, not the parsed spec: the checkpoints record where to find it again
            self.agent.workflow = Workflow(arg, self.agent.services, checkpointer=old.checkpointer)
        self.workflow = arg
        self._say(f"workflow: {escape(spec.name)}" + (f" ({escape(arg)})" if arg != spec.name else ""))

    def _budget(self, arg: str) -> None:
        if arg:
            self.max_total_tokens = parse_budget(arg)
        cap = self.max_total_tokens
        self._say(f"budget: {cap} tokens per question" if cap else "budget: no cap")

    # ------------------------------------------------------------------ asking
    def _ask(self, question: str, inline: list[str] | None) -> None:
        if not self.images:
            raise ChatError("no image yet: load one with /image PATH")
        image = self.images[-1]
        options = inline if inline is not None else self.options
        if inline is not None and len(inline) < 2:
            raise ChatError("give at least two options in the brackets: question? [a, b, c]")
        agent = self.load()
        if len(self.images) > 1:
            self._say(f"[dim]asking about image {len(self.images)}: {escape(image.name)}[/]")
        budget = agent.budget.model_copy(update={"max_total_tokens": self.max_total_tokens})
        started = time.perf_counter()
        run_id = self._stream(
            lambda watch: agent.stream(
                question, image=image, options=options or None, budget=budget, watch=watch
            )
        )
        self._report(agent.answer(run_id), time.perf_counter() - started)

    def _stream(self, start: Callable[[Callable[[SearchProgress], None]], Iterator[NodeEvent]]) -> str:
        """Run, showing a live line (a terminal: the nodes so far, and the probes and tokens counted as a
        search spends them) or one line per node (a pipe)."""
        run_id, probes, tokens = "", 0, 0
        nodes: list[str] = []
        working: list[SearchProgress] = []  # the node at work, while it reports progress

        def line() -> str:
            now = working[-1] if working else None
            path = " > ".join([*nodes, *([f"{now.node}…"] if now else [])]) or "starting"
            more_probes, more_tokens = (now.probes, now.tokens) if now else (0, 0)
            return f"{escape(path)}  [dim]{probes + more_probes} probes, {tokens + more_tokens} tokens[/]"

        live = self.console.status(line()) if self.console.is_terminal else None

        def watch(progress: SearchProgress) -> None:
            working[:] = [progress]
            if live is not None:
                live.update(line())

        if live is not None:
            live.start()
        try:
            for event in start(watch):
                run_id = event.run_id
                working.clear()
                nodes.append(event.node)
                probes += int(event.update.get("probes") or 0)
                spent = event.update.get("spent") or {}
                tokens += sum(
                    int(spent.get(k, 0)) for k in ("visual_tokens", "text_tokens", "generated_tokens")
                )
                if live is not None:
                    live.update(line())
                else:
                    said = "; ".join(event.messages)
                    self._say(f"[cyan]{escape(event.node)}[/] {escape(said)}")
        finally:
            if live is not None:
                live.stop()
        if not run_id:
            raise ChatError("the workflow produced no events")
        return run_id

    def _report(self, answer: Answer, seconds: float) -> None:
        self.last, self.waiting = answer, None
        self.last_spec = self.load().workflow.spec  # /why reads the judge of the workflow that answered
        u = answer.tokens
        cost = (
            f"{u.total} tokens ({u.visual_tokens} visual + {u.text_tokens} text + {u.generated_tokens} "
            f"generated), {answer.probes} probes, {seconds:.1f} s"
        )
        if answer.status == "waiting":
            self.waiting = answer.run_id
            pending = answer.pending or {}
            self._say(
                f"[yellow]the workflow abstained and asks you[/] ({escape(str(pending.get('reason', '')))}); "
                f"its candidate was {escape(repr(pending.get('candidate')))}"
            )
            self._say(
                "type your answer (empty line: let it abstain), or /answer-anyway to take the candidate"
            )
        elif answer.status == "incomplete":
            self._say(f"[yellow]the run stopped before the end[/] (run {answer.run_id}); {cost}")
        elif answer.abstained:
            self._say(
                f"[bold yellow]abstained:[/] {escape(answer.reason or 'no reason given')}  [dim]{cost}[/]"
            )
            self._say("/answer-anyway shows the model's candidate; /answer TEXT records the right answer")
        else:
            conf = f"confidence {answer.confidence:.2f}, " if answer.confidence is not None else ""
            self._say(f"answer: [bold green]{escape(str(answer.text))}[/]  [dim]({conf}{cost})[/]")

    def _resume(self, reply: str | None) -> None:
        assert self.waiting is not None
        agent, run_id = self.load(), self.waiting
        started = time.perf_counter()
        self._report(
            agent.resume(run_id, {"answer": reply} if reply else None), time.perf_counter() - started
        )

    def _need_last(self) -> Answer:
        if self.last is None:
            raise ChatError("nothing asked yet: type a question about the image")
        return self.last

    def _answer_anyway(self) -> None:
        last = self._need_last()
        if self.waiting:
            candidate = (last.pending or {}).get("candidate")
            if candidate is None:
                raise ChatError("the model has no candidate answer; type yours")
            self._resume(str(candidate))
        elif last.option is None:
            self._say("the model produced no candidate answer (its budget may have run out)")
        else:
            conf = f" (confidence {last.confidence:.2f})" if last.confidence is not None else ""
            self._say(
                f"the model's candidate: [bold]{escape(last.option)}[/]{conf}; not vouched for by the gate"
            )

    def _answer_given(self, arg: str) -> None:
        if not arg:
            raise ChatError("/answer needs your answer: /answer blue")
        last = self._need_last()
        if self.waiting:
            self._resume(arg)
            return
        self.load().feedback(last.run_id, answer=arg)
        self._say(f"thanks: recorded {escape(repr(arg))} as the right answer to run {last.run_id}")

    def _feedback(self, arg: str) -> None:
        verdict, _, right = arg.partition(" ")
        if verdict.lower() not in ("right", "wrong"):
            raise ChatError("usage: /feedback right | /feedback wrong [the right answer]")
        last = self._need_last()
        correct = verdict.lower() == "right"
        agent = self.load()
        agent.feedback(last.run_id, correct=correct, answer=right.strip() or None)
        extra = f" (right answer: {escape(right.strip())})" if right.strip() else ""
        held = f"; memory holds {len(agent.memory)} insights" if agent.memory is not None else ""
        self._say(f"thanks: recorded run {last.run_id} as {verdict.lower()}{extra}{held}")

    # ------------------------------------------------------------------ looking back
    def _why(self) -> None:
        last = self._need_last()
        agent = self.load()
        state = agent.workflow.state(last.run_id)
        for text in why_lines(last, state, agent, self.last_spec or agent.workflow.spec):
            self._say(text)

    def _show(self) -> None:
        from foveate.imaging.draw import save_trace
        from foveate.imaging.images import load_image

        last = self._need_last()
        state = self.load().workflow.state(last.run_id)
        crops, visits = crop_visits(state)
        box = state.get("answer_box")
        folder = (
            self.trace_dir or Path(os.environ.get("FOVEATE_CACHE") or Path.home() / ".foveate") / "traces"
        )
        with load_image(state["image_path"]) as image:
            path = save_trace(image, crops, folder / f"{last.run_id}.png", tuple(box) if box else None)
        what = (
            (f"{len(crops)} probed view(s)" if visits else f"{len(crops)} crop(s)")
            + (", the answer crop in blue" if box else "")
            if crops or box
            else "no crops"
        )
        self._say(f"trace picture ({what}): {escape(str(path))}")

    def _memory(self) -> None:
        memory = self.load().memory
        if memory is None:
            raise ChatError("no insight memory configured")
        recent = sorted(memory.insights(), key=lambda i: (i.created_at, i.id))[-5:]
        self._say(f"memory: {len(memory)} insights" + (", the most recent:" if recent else ""))
        for insight in reversed(recent):
            self._say(f"  {insight.id}. \\[{insight.kind.value}] {escape(insight.text)}")

    def _help(self) -> None:
        self._say("type a question about the last image; options inline: what colour? \\[red, blue, green]")
        for name, about in COMMANDS.items():
            self._say(f"  [bold]{name}[/] {escape(about)}")
