"""`SteeredChatModel`: a LangChain chat model over the local steered model.

It decides tool calls under a grammar built from the bound tools (an invalid call
cannot be generated), takes a steering vector per call (never left on the shared
model), and runs requests of different users as one left-padded batched `generate`
with one vector per row (`generate_batch`).

    model = SteeredChatModel()                         # bundled Gemma 3 270M, loaded lazily
    agent_llm = model.bind_tools(make_shop_tools(transport), tool_choice="any")
    message = agent_llm.invoke(messages, steering=vector)       # or config=
    # {"configurable": {"steering": vector}}
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema
import torch
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict, Field, PrivateAttr
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from agent.grammar import GrammarCache, GrammarRows, closing_text, tool_parameters
from agent.tool_choice import FORCED_START, named_tool
from agent.prompt import (Examples, Template, copies_tool_list, format_tools, render_prompt,
                          resolve_template)
from steering import (LoadedModel, SiteKey, SteeringVector, load_model, pack_rows, rerun_from,
                      site_map_of, steer)
from steering.compat import cache_keyword

# Where steering is added: every position, only the prompt, only generated tokens,
# "decision": only where the tool is chosen (the last token of the call's forced start
# `{"name":"` and the tokens of the tool's name until it is unique), so the vector picks
# the tool and the rest of the same generation writes the call unsteered, or "context":
# the prompt and the whole forced start too, then the call written as under "decision"
# (for sites that act through attention to a steered prompt, not at one token).
Positions = Literal["all", "prompt", "generated", "decision", "context"]
# Prompt columns per prefill pass: a batch's whole prompt in one pass holds activations of
# tens of MB per layer, so its elementwise work runs from memory, and attends every column
# to every other; 128 at a time keeps them in cache and skips the later columns (prompt
# memory's decisions: 62 s -> 43 s a batch of 16 on two AVX2 cores, the same tools).
PREFILL_COLUMNS = 128
DECIDING = ("decision", "context")  # modes that stop steering once the tool is named
PrefixReuse = Literal["never", "exact", "always"]
NAME_WRITTEN = re.compile(r'"name"\s*:\s*"([^"]*)"')
CALL_KWARGS = ("steering", "steering_positions", "max_new_tokens")


@dataclass
class _Shared:
    """State shared by every chat model over one `LoadedModel`: the grammar cache, and
    the lock that serialises generation (steering hooks sit on the shared model, so two
    concurrent generates would steer each other)."""

    grammars: GrammarCache
    lock: threading.Lock = field(default_factory=threading.Lock)


def shared_state(loaded: LoadedModel) -> _Shared:
    """The model's `_Shared`, created once and kept on the model object."""
    state = getattr(loaded.model, "_fints_chat_state", None)
    if state is None:
        eos = _eos_ids(loaded)
        vocab = int(loaded.model.get_output_embeddings().weight.shape[0])
        state = _Shared(GrammarCache.for_model(loaded.tokenizer, vocab, eos))
        loaded.model._fints_chat_state = state
    return state


def _eos_ids(loaded: LoadedModel) -> list[int]:
    eos = loaded.model.generation_config.eos_token_id
    if eos is None:
        eos = loaded.tokenizer.eos_token_id
    return [int(e) for e in (eos if isinstance(eos, list) else [eos])]


@dataclass(frozen=True)
class _Choice:
    """What a call may produce: `call_tools` (grammar), `text` allowed or not."""

    call_tools: list[dict[str, Any]]
    text: bool


def resolve_tool_choice(tools: list[dict[str, Any]], tool_choice: Any) -> _Choice:
    """None/"auto": a call or text; "any"/"required"/True: a call to any tool; a tool's
    name (or {"type": "function", "function": {"name": ...}}): a call to that tool;
    "none" or no tools: text."""
    names = [t["function"]["name"] for t in tools]
    if isinstance(tool_choice, dict):
        tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if not tools or tool_choice == "none":
        return _Choice([], True)
    if tool_choice in (None, "auto"):
        return _Choice(tools, True)
    if tool_choice in ("any", "required", True):
        return _Choice(tools, False)
    if isinstance(tool_choice, str) and tool_choice in names:
        return _Choice([tools[names.index(tool_choice)]], False)
    raise ValueError(
        f"tool_choice {tool_choice!r} is not allowed; use None, 'auto', 'any', 'required', "
        f"'none' or one of the bound tools {names}"
    )


class SteeredChatModel(BaseChatModel):
    """A chat model over a local causal LM, steered per call, tool calls under a grammar.

    `SteeredChatModel()` uses the bundled default model, loaded on first use; pass
    `model=` (path, GGUF or cached hub name) for another, or `loaded=` to share one
    `LoadedModel` between several instances.
    """

    model: str | None = None
    loaded: Any = Field(default=None, exclude=True)  # a steering.LoadedModel (a dataclass pydantic cannot check)
    max_new_tokens: int = Field(default=128, gt=0)
    temperature: float = Field(default=0.0, ge=0.0)
    grammar: bool = True
    template: Template = "auto"
    # Example requests per tool name, shown in the base template's instructions; none by
    # default: a generic caller's prompt is built from its bound tools alone (the shop
    # agent passes agent.prompt.EXAMPLES, the prompt its memory was extracted in).
    examples: Examples | None = None
    steering_positions: Positions = "all"
    max_string_length: int | None = Field(default=None, gt=0)  # None: strings end by the budget
    max_array_items: int = Field(default=30, gt=0)
    close_loops: bool = True  # end a string that repeats itself (agent.grammar's loop guard)
    # The shared instructions (tool list, examples) computed once and reused
    # (steering.prefix): "exact" reuses what steering does not change (all of it for
    # unsteered calls, the layers below the steered one for steered calls: the same
    # tokens as "never"); "always" reuses all of it for steered calls too (the vector then
    # acts on the request part only, which weakens it); "never".
    reuse_prefix: PrefixReuse = "exact"

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "fints-steered"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.loaded.model_id if self.loaded is not None else (self.model or "default"),
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "grammar": self.grammar,
            "template": self.template,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_model_name"] = kwargs.get("model") or self._identifying_params["model"]
        params["ls_max_tokens"] = kwargs.get("max_new_tokens") or self.max_new_tokens
        return params

    def get_loaded(self) -> LoadedModel:
        """The model, loaded on first use (once, even from several threads)."""
        with self._load_lock:
            if self.loaded is None:
                self.loaded = load_model(self.model)
        return self.loaded

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, pydantic models, functions or OpenAI-style dicts)."""
        formatted = format_tools(tools)
        resolve_tool_choice(formatted, tool_choice)  # reject a bad choice now, not per call
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # Steering may come in the RunnableConfig: lift it into the call's keywords.
    def invoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
               stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        return super().invoke(input, config, stop=stop, **_from_config(config, kwargs))

    async def ainvoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
                      stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        return await super().ainvoke(input, config, stop=stop, **_from_config(config, kwargs))

    def stream(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
               stop: list[str] | None = None, **kwargs: Any) -> Iterator[Any]:
        return super().stream(input, config, stop=stop, **_from_config(config, kwargs))

    def astream(self, input: LanguageModelInput, config: RunnableConfig | None = None, *,
                stop: list[str] | None = None, **kwargs: Any) -> Any:
        return super().astream(input, config, stop=stop, **_from_config(config, kwargs))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        vector = kwargs.get("steering")
        (message,) = self.generate_batch(
            [messages],
            steering=[vector],
            tools=kwargs.get("tools"),
            tool_choice=kwargs.get("tool_choice"),
            steering_positions=kwargs.get("steering_positions"),
            stop=stop,
            max_new_tokens=kwargs.get("max_new_tokens"),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """One chunk holding the whole decision: a call is only valid once complete."""
        message = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs).generations[0].message
        chunk = AIMessageChunk(
            content=message.content,
            tool_call_chunks=[
                tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(message.tool_calls)
            ] + [  # a malformed call stays malformed (args that do not parse)
                tool_call_chunk(name=c["name"], args=c["args"], id=c["id"], index=len(message.tool_calls) + i)
                for i, c in enumerate(message.invalid_tool_calls)
            ],
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            chunk_position="last",
        )
        if run_manager and isinstance(message.content, str):
            run_manager.on_llm_new_token(message.content, chunk=ChatGenerationChunk(message=chunk))
        yield ChatGenerationChunk(message=chunk)

    def generate_batch(
        self,
        conversations: Sequence[Sequence[Any]],
        steering: Sequence[SteeringVector | None] | SteeringVector | None = None,
        *,
        tools: Sequence[Any] | None = None,
        tool_choice: str | dict[str, Any] | bool | None = None,
        steering_positions: Positions | None = None,
        stop: list[str] | None = None,
        max_new_tokens: int | None = None,
    ) -> list[AIMessage]:
        """One decision per conversation in ONE left-padded batched `generate`, each row
        steered by its own vector (or None); each row's result equals its own run.

        With `steering_positions="decision"` a row is steered only while its tool is
        decided (the forced start's last token, then the name until it is unique); the
        call so far is then read again unsteered, as the tokenizer spells it, and written
        on, unsteered, in the same generation: the call two passes would give (a steered
        pick, an unsteered call forced to that tool), and steering cannot garble arguments.
        `"context"` steers the prompt and the whole forced start as well, then writes the
        call the same way (its arguments attend to the steered prompt).
        """
        if not conversations:
            return []
        loaded = self.get_loaded()
        rows = len(conversations)
        vectors = _row_vectors(steering, rows, loaded)
        specs = format_tools(tools)
        choice = resolve_tool_choice(specs, tool_choice)
        template = resolve_template(self.template, loaded.tokenizer)
        prompts = [render_prompt(c, specs, tokenizer=loaded.tokenizer, template=template, examples=self.examples)
                   for c in conversations]
        tokenizer = loaded.tokenizer
        token_rows = tokenizer(prompts, add_special_tokens=template == "base")["input_ids"]
        budget = max_new_tokens or self.max_new_tokens
        stops = list(stop or [])
        if template == "base" and not self._constrained(choice):
            stops.append("\n")  # a base-template turn is one line
        positions = steering_positions or self.steering_positions
        if positions in DECIDING and not (self._constrained(choice) and not choice.text):
            positions = "all"  # where a call is not required, "decision" steers everywhere
        elif positions in DECIDING and len(choice.call_tools) == 1:
            vectors = None  # one tool the call may name: nothing to decide
        out = self._run(loaded, token_rows, vectors, choice, template, budget, stops, positions)
        stop_ids = shared_state(loaded).grammars.stop_token_ids
        messages = []
        for row in range(rows):
            ids = _trim(out.tokens[row], tokenizer.pad_token_id, stop_ids)
            text = tokenizer.decode(ids, skip_special_tokens=True)
            finished = out.completed[row] if out.completed is not None else len(ids) < budget
            messages.append(_message(
                text, specs, choice, finished=finished, stops=stops, budget=budget,
                usage=(len(token_rows[row]), len(ids)), model_id=loaded.model_id,
                closing=out.closings[row] if out.closings is not None else None,
            ))
        copied = [row for row, message in enumerate(messages) if choice.text and self._constrained(choice)
                  and copies_tool_list(str(message.content), specs)]
        if copied:  # a base model that recites the tool list means one of them: call it
            calls = self.generate_batch(
                [conversations[row] for row in copied],
                None if vectors is None else [vectors[row] for row in copied],
                tools=specs, tool_choice="any", steering_positions=steering_positions, stop=stop,
                max_new_tokens=max_new_tokens)
            for row, call in zip(copied, calls):
                call.response_metadata["recited_tools"] = str(messages[row].content)
                messages[row] = call
        return messages

    def choose_tools(
        self,
        conversations: Sequence[Sequence[Any]],
        steering: Sequence[SteeringVector | None] | SteeringVector | None = None,
        *,
        tools: Sequence[Any],
        steering_positions: Positions | None = None,
    ) -> list[str]:
        """Each conversation's tool as greedy generation under the grammar names it, by
        the same decoding (`_run`) stopped as soon as the name is unique: the forced
        `{"name":"` is read with the prompt in one prefill and only the name tokens that
        set it apart are generated. Steering, when given, acts where `generate_batch`
        with the same `steering_positions` acts until the name is decided."""
        if not conversations:
            return []
        loaded = self.get_loaded()
        specs = format_tools(tools)
        if not specs:
            raise ValueError("choose_tools needs at least one tool")
        names = [spec["function"]["name"] for spec in specs]
        if len(names) == 1:
            return names * len(conversations)
        template = resolve_template(self.template, loaded.tokenizer)
        prompts = [render_prompt(c, specs, tokenizer=loaded.tokenizer, template=template, examples=self.examples)
                   for c in conversations]
        token_rows = loaded.tokenizer(prompts, add_special_tokens=template == "base")["input_ids"]
        vectors = _row_vectors(steering, len(conversations), loaded)
        budget = len(FORCED_START) + max(len(n) for n in names) + 1  # a token is at least a character
        out = self._run(loaded, token_rows, vectors, _Choice(specs, False), template, budget, [],
                        steering_positions or self.steering_positions, until_named=True)
        texts = [loaded.tokenizer.decode(row, skip_special_tokens=True) for row in out.tokens]
        return [named_tool(text, names) or names[0] for text in texts]

    def _reused_layers(self, loaded: LoadedModel, vectors: list[SteeringVector | None] | None,
                       positions: str) -> int | None:
        """How many of the shared prefix's layers this call takes from the cache unsteered
        (None: no reuse). Without a vector in the prefix, all; with one, the layers below
        the first it changes ("exact") or all ("always", the vector then misses the
        instructions). A vector from the first layer up leaves nothing to reuse: the
        whole prompt is then prefilled in chunks like any other (`_Decoder._prefill`)."""
        if self.reuse_prefix == "never":
            return None
        layers = site_map_of(loaded).num_layers
        if vectors is None or positions in ("generated", "decision") or self.reuse_prefix == "always":
            return layers
        keys = {SiteKey.parse(key) for row in vectors if row is not None for key in row.tensors}
        return (rerun_from(keys) or None) if keys else layers

    def _constrained(self, choice: _Choice) -> bool:
        """Whether calls for this choice are generated under a grammar."""
        return self.grammar and bool(choice.call_tools)

    def _grammar(self, state: _Shared, choice: _Choice, template: str) -> Any:
        if not self._constrained(choice):
            return None
        return state.grammars.grammar(
            choice.call_tools,
            allow_text=("line" if template == "base" else "turn") if choice.text else None,
            max_string_length=self.max_string_length,
            max_array_items=self.max_array_items,
        )

    def _run(
        self, loaded: LoadedModel, token_rows: list[list[int]], vectors: list[SteeringVector | None] | None,
        choice: _Choice, template: str, budget: int, stops: list[str], positions: str,
        *, until_named: bool = False,
    ) -> _Generated:
        """One batched decode over left-padded rows (`_Decoder`), each row ending on its
        own: a stop token, its grammar complete, a stop string, the budget, or (with
        `until_named`) its call's tool name unique.

        The rows take the instructions they share from the prefix cache, shifted per row
        so that each row keeps its place in the left-padded batch; for steered rows the
        layers from the first steered one up are computed again under the vectors
        (`reuse_prefix="exact"`), so the result is the same as computing it all.
        """
        state = shared_state(loaded)
        tokenizer = loaded.tokenizer
        rows = len(token_rows)
        grammar = self._grammar(state, choice, template)
        grammar_rows = GrammarRows(
            [grammar] * rows, state.grammars.vocab_size, [not (choice.text and template == "chat")] * rows,
            quotes=state.grammars.quotes if self.close_loops else None,
        )
        keep = self._reused_layers(loaded, vectors, positions)
        shared = loaded.prefixes.shared_length(token_rows, _window(loaded)) if keep is not None else 0
        names = [t["function"]["name"] for t in choice.call_tools]
        decoder = _Decoder(loaded, grammar_rows, budget, stops, state.grammars.stop_token_ids,
                           self.temperature, positions, names, until_named,
                           [vectors is not None and vectors[row] is not None for row in range(rows)])
        with state.lock, loaded.lock, torch.no_grad():
            # the shared instructions: computed once per model, unsteered (outside `steer`)
            prompt = decoder.start(token_rows, shared)
            cache = loaded.prefixes.copy_for(loaded.model, prompt.prefix, rows, prompt.gaps) if shared else None
            with steer(loaded, vectors, check=positions in ("all", "prompt", "context")) as run:
                if cache is not None and keep is not None:  # the layers a vector changes, if any
                    loaded.prefixes.rerun_layers(loaded.model, cache, prompt.prefix, prompt.gaps, keep)
                tokens = decoder.decode(prompt, cache, run)
        if grammar is None:
            return _Generated(tokens, None, None)
        closings = [
            None if done else _closing(grammar_rows.matchers[row], tokens[row], tokenizer)
            for row, done in enumerate(grammar_rows.completed)
        ]
        return _Generated(tokens, list(grammar_rows.completed), closings)


@dataclass
class _Prompt:
    """The first pass of a decode: each row's prompt with the run its grammar forces
    first (the call's `{"name":"`), left-padded; `shared` columns come from the prefix
    cache."""

    ids: torch.Tensor
    attention: torch.Tensor
    gaps: list[int]
    prefix: list[int]
    forced: list[list[int]]
    shared: int


class _Decoder:
    """Batched greedy (or sampled) decoding that does not spend a forward pass on what
    the grammar forces.

    After each token a row writes, the run its grammar admits alone next
    (`GrammarRows.forced`: `{"name":"`, the rest of a name once it is unique,
    `","arguments":{"query":"`) is appended at once, and the next pass feeds the row the
    token and that run together: one pass per choice the model makes, not per token.
    Rows feed runs of different lengths, so a pass is as wide as its longest run and a
    shorter run sits right-aligned after holes. The attention masks are built here from
    each row's own token positions (holes, left padding and re-read columns are never
    attended to; a sliding window counts positions, not columns), so a row decodes as
    it would alone, token by token. Only the last column's logits are computed: the
    output head (262k rows on Gemma) is the largest matrix of a small model.

    Steering is placed per token (`SteeringRun.where`): under "decision" a row is
    steered on the forced start's last token and its name's tokens until the name is
    unique; the call's columns are then dropped and its text so far is read again,
    unsteered and spelled as the tokenizer spells it, with the next run. What follows
    attends to the past a second, unsteered pass forced to that tool would read (the
    model may have chosen the name in other pieces than the tokenizer's).
    """

    def __init__(self, loaded: LoadedModel, grammar: GrammarRows, budget: int, stops: list[str],
                 stop_ids: list[int], temperature: float, positions: str, names: list[str] | None,
                 until_named: bool, steered: list[bool]) -> None:
        self.loaded, self.grammar, self.budget, self.stops = loaded, grammar, budget, stops
        self.stop_ids, self.temperature, self.mode = set(stop_ids), temperature, positions
        self.names, self.until_named, self.steered = names, until_named, steered
        self.windows = _attention_windows(loaded.model)

    def start(self, token_rows: list[list[int]], shared: int) -> _Prompt:
        """The prompts with their forced first runs, packed (the forced tokens are accepted)."""
        forced = []
        for row in range(len(token_rows)):
            run = self.grammar.forced(row, self.loaded.tokenizer)[: self.budget]
            for token in run:
                self.grammar.accept(row, token)
            forced.append(run)
        full = [prompt + run for prompt, run in zip(token_rows, forced)]
        ids, attention = pack_rows(full, self.loaded.tokenizer.pad_token_id)
        gaps = [ids.shape[1] - len(row) for row in full]
        return _Prompt(ids, attention, gaps, token_rows[0][:shared], forced, shared)

    def decode(self, prompt: _Prompt, cache: Any, run: Any) -> list[list[int]]:
        """Each row's new tokens (forced ones included), decoded to its end."""
        rows, width = prompt.ids.shape
        device = self.loaded.device
        self.cache = _full_layers(cache)
        attention = prompt.attention.bool()
        positions = (prompt.attention.cumsum(-1) - 1).clamp(min=0)
        self.alive, self.positions = attention[:, : prompt.shared].to(device), positions[:, : prompt.shared].to(device)
        self.run = run
        lengths = [width - gap for gap in prompt.gaps]
        written = [list(f) for f in prompt.forced]
        steer = torch.zeros(rows, width, dtype=torch.bool)
        for row, forced in enumerate(prompt.forced):
            prompt_end = width - len(forced)
            if self.mode in ("all", "prompt", "context"):
                steer[row, prompt.gaps[row]:prompt_end] = True
            if forced and self.mode in ("all", "generated", "context"):
                steer[row, prompt_end:] = True
            if forced and self.mode == "decision":
                steer[row, width - 1] = True
        # a row being decided under "decision": the cache columns of its call's tokens so
        # far (None once decided), and the position its call starts at
        deciding: list[list[int] | None] = [
            list(range(width - len(f), width)) if self.mode in DECIDING and f and self.steered[row] else None
            for row, f in enumerate(prompt.forced)]
        call_start = [lengths[row] - len(f) for row, f in enumerate(prompt.forced)]
        done = [self._ended(row, written[row]) for row in range(rows)]
        self.kept = list(range(rows))  # the rows the batch still holds, in order
        logits = self._prefill(prompt.ids, positions, attention, steer, prompt.shared)
        next_position = lengths
        while not all(done):
            live = [row for row in range(rows) if not done[row]]
            chosen = self._pick(self.grammar.mask(self._all_rows(logits, rows), live))
            runs: list[list[tuple[int, int, bool]]] = [[] for _ in range(rows)]  # (token, position, steered)
            for row in live:
                new = [chosen[row]]
                ended = self._accept(row, chosen[row], written[row])
                if not ended:
                    forced = self.grammar.forced(row, self.loaded.tokenizer)[: self.budget - len(written[row])]
                    for token in forced:
                        self.grammar.accept(row, token)
                    written[row].extend(forced)
                    new.extend(forced)
                    ended = self._ended(row, written[row])
                if ended:
                    done[row] = True
                    continue
                steered = self._steered_now(row, written[row], deciding)
                if deciding[row] is not None and not steered:  # just decided: read the call again, unsteered
                    start = call_start[row]
                    self.alive[self.kept.index(row), deciding[row]] = False
                    written[row] = self._respelled(written[row])
                    new = list(written[row])
                    deciding[row] = None
                else:
                    start = next_position[row]
                runs[row].extend((token, start + i, steered) for i, token in enumerate(new))
                next_position[row] = start + len(new)
            if all(done):
                break
            self._drop([row for row in self.kept if not done[row]])
            logits = self._feed([runs[row] for row in self.kept], [deciding[row] for row in self.kept])
        run.rows = None
        return written

    def _prefill(self, ids: torch.Tensor, positions: torch.Tensor, attention: torch.Tensor,
                 steer: torch.Tensor, shared: int) -> torch.Tensor:
        """The prompt's columns after the shared ones, PREFILL_COLUMNS at a time (the same
        cache as one pass); the last column's logits (the output head runs once)."""
        width = ids.shape[1]
        for start in range(shared, width, PREFILL_COLUMNS):
            end = min(start + PREFILL_COLUMNS, width)
            logits = self._pass(ids[:, start:end], positions[:, start:end], attention[:, start:end],
                                steer[:, start:end], head=end == width)
        return logits

    def _drop(self, keep: list[int]) -> None:
        """Take the rows that have ended out of the batch (cache, masks, vectors): a
        call ends after a few tokens, a review after dozens, and every row of a pass
        costs as much as a live one."""
        if len(keep) == len(self.kept):
            return
        index = torch.tensor([self.kept.index(row) for row in keep], device=self.alive.device)
        for layer in self.cache.layers:
            layer.batch_select_indices(index)
        self.alive, self.positions = self.alive[index], self.positions[index]
        self.kept = keep
        self.run.rows = torch.tensor(keep, device=self.alive.device)

    def _all_rows(self, logits: torch.Tensor, rows: int) -> torch.Tensor:
        """The logits of the rows still held, placed at their rows of the whole batch
        (the others' are zeros, never read)."""
        if len(self.kept) == rows:
            return logits
        full = logits.new_zeros((rows, logits.shape[1]))
        full[self.kept] = logits
        return full

    def _steered_now(self, row: int, written: list[int], deciding: list[list[int] | None]) -> bool:
        """Whether the tokens `row` feeds next are steered."""
        if self.mode in DECIDING:
            return deciding[row] is not None and self._named(row, written) is None
        return self.mode in ("all", "generated")

    def _respelled(self, written: list[int]) -> list[int]:
        """`written` as the tokenizer spells its text (itself where that spelling does not
        decode to the same text)."""
        tokenizer = self.loaded.tokenizer
        text = tokenizer.decode(written, skip_special_tokens=True)
        spelled = tokenizer(text, add_special_tokens=False)["input_ids"]
        return spelled if tokenizer.decode(spelled, skip_special_tokens=True) == text else list(written)

    def _named(self, row: int, written: list[int]) -> str | None:
        return named_tool(self.loaded.tokenizer.decode(written, skip_special_tokens=True), self.names or [])

    def _accept(self, row: int, token: int, written: list[int]) -> bool:
        """Append `token` to `row`; whether the row has ended."""
        written.append(token)
        self.grammar.accept(row, token)
        return self._ended(row, written)

    def _ended(self, row: int, written: list[int]) -> bool:
        if self.grammar.completed[row] or len(written) >= self.budget:
            return True
        if written and written[-1] in self.stop_ids:
            return True
        if self.until_named and self._named(row, written) is not None:
            return True
        if self.stops:
            text = self.loaded.tokenizer.decode(written, skip_special_tokens=True)
            return any(stop in text for stop in self.stops)
        return False

    def _pick(self, scores: torch.Tensor) -> list[int]:
        if self.temperature > 0:
            return torch.multinomial(torch.softmax(scores / self.temperature, dim=-1), 1)[:, 0].tolist()
        return scores.argmax(dim=-1).tolist()

    def _feed(self, runs: list[list[tuple[int, int, bool]]], deciding: list[list[int] | None]) -> torch.Tensor:
        """One pass over each row's run, right-aligned; the steered tokens' columns are
        remembered for rows still being decided."""
        rows, width = len(runs), max(len(run) for run in runs)
        ids = torch.full((rows, width), self.loaded.tokenizer.pad_token_id or 0, dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        alive = torch.zeros((rows, width), dtype=torch.bool)
        steer = torch.zeros((rows, width), dtype=torch.bool)
        first = self.alive.shape[1]
        for row, run in enumerate(runs):
            for index, (token, position, steered) in enumerate(run, start=width - len(run)):
                ids[row, index], positions[row, index], alive[row, index], steer[row, index] = token, position, True, steered
                if deciding[row] is not None:
                    deciding[row].append(first + index)
        return self._pass(ids, positions, alive, steer)

    def _pass(self, ids: torch.Tensor, positions: torch.Tensor, alive: torch.Tensor,
              steer: torch.Tensor, head: bool = True) -> torch.Tensor | None:
        """One forward pass over new columns; the last column's logits (rows x vocab), or
        None without the output `head` (a prompt's chunk that is not its last)."""
        device = self.loaded.device
        ids, positions, alive, steer = ids.to(device), positions.to(device), alive.to(device), steer.to(device)
        self.alive = torch.cat([self.alive, alive], dim=1)
        self.positions = torch.cat([self.positions, positions], dim=1)
        self.run.where = steer
        model = self.loaded.model if head else site_map_of(self.loaded.model).decoder
        output = model(input_ids=ids, position_ids=positions, attention_mask=self._masks(ids.shape[1]),
                       use_cache=True, **({"logits_to_keep": 1} if head else {}),
                       **{cache_keyword(model): self.cache})
        self.run.where = None
        return output.logits[:, -1, :].float() if head else None

    def _masks(self, width: int) -> Any:
        """The 4D masks of a pass over the last `width` columns, per attention kind: a
        token sees its own row's live tokens at positions up to its own (within the
        window, for sliding layers), and a hole sees itself (so no row is all masked)."""
        queries = self.positions[:, -width:, None]
        keys = self.positions[:, None, :]
        seen = self.alive[:, None, :] & (keys <= queries)
        columns = self.alive.shape[1]
        diagonal = torch.arange(width, device=seen.device)
        masks = {}
        for kind, window in self.windows.items():
            mask = seen & (queries - keys < window) if window else seen.clone()
            mask[:, diagonal, columns - width + diagonal] = True
            mask = mask[:, None]
            if self.loaded.model.config._attn_implementation == "eager":
                mask = torch.zeros(mask.shape, dtype=self.loaded.dtype, device=mask.device).masked_fill(
                    ~mask, torch.finfo(self.loaded.dtype).min)
            masks[kind] = mask
        return masks if None not in masks else masks[None]


def _attention_windows(model: Any) -> dict[str | None, int | None]:
    """Each attention kind's window (None: the whole past), by the config's layer types
    (hybrid models take a mask per kind) or one kind for every layer."""
    config = model.config.get_text_config()
    window = getattr(config, "sliding_window", None)
    kinds = getattr(config, "layer_types", None)
    if kinds:
        return {kind: window if kind == "sliding_attention" else None for kind in set(kinds)}
    return {None: window}


def _full_layers(cache: Any) -> DynamicCache:
    """A cache that keeps every column of every layer (the decoder's masks apply any
    sliding window), holding what `cache` (the prefix's copy, or None) holds; its layers
    grow in place (`_GrowingLayer`)."""
    full = DynamicCache()
    full.layer_class_to_replicate = _GrowingLayer
    for index, layer in enumerate(cache.layers if cache is not None else []):
        full.update(layer.keys, layer.values, index)
    return full


class _GrowingLayer(DynamicLayer):
    """A full cache layer that writes new columns into room reserved ahead (doubling
    when full): a decode step copies its one new column, where `DynamicLayer` copies the
    whole cache (8% of a prompt-memory batch's generation on two CPU cores). `keys` and
    `values` are views of the columns written; setting either (None on a reset) takes
    the tensor given as the columns so far."""

    _rooms: dict[str, torch.Tensor | None]
    _length: int

    def __init__(self, **kwargs: Any) -> None:
        self._rooms, self._length = {"keys": None, "values": None}, 0
        super().__init__(**kwargs)

    def _written(self, name: str) -> torch.Tensor | None:
        room = self._rooms[name]
        return None if room is None else room[..., : self._length, :]

    def _take(self, name: str, value: torch.Tensor | None) -> None:
        self._rooms[name] = value
        self._length = 0 if value is None else value.shape[-2]

    keys = property(lambda self: self._written("keys"), lambda self, v: self._take("keys", v))  # type: ignore[assignment]
    values = property(lambda self: self._written("values"), lambda self, v: self._take("values", v))  # type: ignore[assignment]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.device, self.is_initialized = key_states.device, True
        start, end = self._length, self._length + key_states.shape[-2]
        for name, new in (("keys", key_states), ("values", value_states)):
            room = self._rooms[name]
            if room is None or end > room.shape[-2]:
                grown = new.new_empty(*new.shape[:-2], max(end, 2 * start), new.shape[-1])
                if start:
                    grown[..., :start, :] = room[..., :start, :]
                self._rooms[name] = room = grown
            room[..., start:end, :] = new
        self._length = end
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._rooms = {name: None if room is None else room[indices] for name, room in self._rooms.items()}


@dataclass
class _Generated:
    """What `_run` generated: each row's new token ids (padded at the end), and for
    grammar-constrained runs whether each row's call was completed and, for a row the
    budget cut inside a call, the shortest text that closes it."""

    tokens: list[list[int]]
    completed: list[bool] | None
    closings: list[str | None] | None


def _closing(matcher: Any, tokens: list[int], tokenizer: Any) -> str | None:
    """What closes a row's cut call (None: the row is not inside a call, or the grammar
    found no closing)."""
    if matcher is None:
        return None
    written = tokenizer.decode(tokens, skip_special_tokens=True)
    return closing_text(matcher, written) if written.lstrip().startswith("{") else None


def _window(loaded: LoadedModel) -> int | None:
    """The longest prefix a shifted cache can hold: a sliding attention window keeps
    only its last `window - 1` tokens."""
    window = getattr(loaded.model.config.get_text_config(), "sliding_window", None)
    return int(window) - 1 if window else None


def _from_config(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    configurable = (config or {}).get("configurable") or {}
    merged = dict(kwargs)
    for key in CALL_KWARGS:
        if key in configurable and merged.get(key) is None:
            merged[key] = configurable[key]
    return merged


def _row_vectors(
    steering: Sequence[SteeringVector | None] | SteeringVector | None, rows: int, loaded: LoadedModel
) -> list[SteeringVector | None] | None:
    if steering is None:
        return None
    vectors = [steering] * rows if isinstance(steering, SteeringVector) else list(steering)
    if len(vectors) != rows:
        raise ValueError(f"{len(vectors)} steering vectors for {rows} conversations; give one (or None) per row")
    for vector in vectors:
        if vector is not None and not isinstance(vector, SteeringVector):
            raise TypeError(f"steering must be a SteeringVector or None, not {type(vector).__name__}")
        if vector is not None:
            vector.check_model(loaded.model_id, loaded.hidden_size)
    return vectors if any(v is not None for v in vectors) else None


def _trim(ids: list[int], pad: int | None, eos: list[int]) -> list[int]:
    """Generated ids up to the first stop token, without the padding of rows that ended early."""
    for index, token in enumerate(ids):
        if token in eos:
            return ids[:index]
    while ids and ids[-1] == pad:
        ids = ids[:-1]
    return ids


def _message(
    text: str,
    specs: list[dict[str, Any]],
    choice: _Choice,
    *,
    finished: bool,
    stops: list[str],
    budget: int,
    usage: tuple[int, int],
    model_id: str,
    closing: str | None = None,
) -> AIMessage:
    """Turn the generated text into an AIMessage: a tool call, a flagged malformed call,
    or text. A call the budget cut is completed with `closing` (the grammar's shortest
    completion) and marked `cut` in the metadata, with what was added."""
    for stop in stops:
        if stop in text:
            text, finished = text[: text.index(stop)], True
    meta = {"model_name": model_id, "finish_reason": "stop" if finished else "length"}
    usage_metadata = {"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)}
    stripped = text.strip()
    if not (choice.call_tools and (stripped.startswith("{") or not choice.text)):
        return AIMessage(content=stripped, response_metadata=meta, usage_metadata=usage_metadata)
    call_id = f"call_{uuid.uuid4().hex[:24]}"
    problem = None if finished else f"the budget of max_new_tokens={budget} ran out before the call was complete"
    if problem is not None and closing is not None:  # still "length": the budget ended it
        meta["cut"] = {"max_new_tokens": budget, "closed_with": closing}
        stripped, problem = (text + closing).strip(), None
    if problem is None:
        name, args, problem = _parse_call(stripped, choice.call_tools)
        if problem is None:
            meta["finish_reason"] = "length" if "cut" in meta else "tool_calls"
            meta["generated_text"] = stripped  # byte-for-byte the call text (with any closing)
            return AIMessage(content="", tool_calls=[tool_call(name=name, args=args, id=call_id)],
                             response_metadata=meta, usage_metadata=usage_metadata)
    meta["finish_reason"] = meta["finish_reason"] if meta["finish_reason"] == "length" else "malformed"
    return AIMessage(
        content="",
        invalid_tool_calls=[invalid_tool_call(name=None, args=stripped, id=call_id, error=problem)],
        response_metadata=meta,
        usage_metadata=usage_metadata,
    )


def _parse_call(text: str, tools: list[dict[str, Any]]) -> tuple[str, dict[str, Any], str | None]:
    """Parse and validate a call; the grammar makes failures impossible, this fails
    closed when the grammar is off (or broken)."""
    names = [t["function"]["name"] for t in tools]
    try:
        call = json.loads(text)
    except json.JSONDecodeError as error:
        return "", {}, f"not JSON: {error}"
    if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
        return "", {}, 'a call must be {"name": ..., "arguments": {...}}'
    name, args = call["name"], call["arguments"]
    if name not in names:
        return "", {}, f"unknown tool {name!r}; bound tools are {names}"
    try:
        jsonschema.validate(args, tool_parameters(tools[names.index(name)]))
    except jsonschema.ValidationError as error:
        return "", {}, f"arguments do not fit {name}'s schema: {error.message}"
    return name, args, None
