"""The turn-taker: the conversation state machine of ``docs/architecture.md``.

States: ``listening`` → ``thinking`` (turn taken, no audio yet) → ``speaking``
→ ``paused`` (the user may be interrupting; output held, not discarded) → back.

Each tick it reads the model's ``ListenSignals`` and ``AgentStatus`` and returns
the commands for the model (``duplex.models.actions``) and the events to emit.
The decisions are asked of their own parts; this module holds only the states
and their transitions:

- ``speech``: is the user speaking (onsets, hysteresis, the user's level)?
- ``end_of_turn``: is the user's turn over; when to ask for its transcript?
- ``barge_in``: is user sound while the agent speaks an interruption?
- ``backchannel``: short acknowledgements (the user's, and the agent's own);
- ``echo``: is what is heard the agent's own voice?

All thresholds come from the profile's ``[turn]`` and ``[barge_in]`` sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from duplex.config import BargeInConfig, TurnConfig
from duplex.events import (
    BargeIn,
    Event,
    SpeechStarted,
    SpeechStopped,
    StateChanged,
    TurnTaken,
    UserBackchannel,
)
from duplex.models.actions import (
    Action,
    Backchannel,
    DiscardDraft,
    PauseOutput,
    ResponseOptions,
    ResumeOutput,
    StopOutput,
    TakeTurn,
)
from duplex.models.base import AgentStatus, ListenSignals
from duplex.policy.backchannel import AgentBackchannels
from duplex.policy.barge_in import BargeInJudge, Verdict
from duplex.policy.end_of_turn import Endpointing, UserTurn
from duplex.policy.speech import SpeechDetector, SpeechFrame, UserLevel


class ConvState(StrEnum):
    """Where the conversation stands (the ``state`` event's values)."""

    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    PAUSED = "paused"


_AGENT_OUT = (ConvState.SPEAKING, ConvState.PAUSED)  # the agent's output is under way


@dataclass
class TurnTaker:
    """Per-session conversation state machine. Feed it one frame's signals per tick.

    Args:
        turn: the ``[turn]`` section.
        barge: the ``[barge_in]`` section.
        frame_ms: tick length.
        state: the state to start in.
        auto_turns: False: turns end only when the client commits (manual mode).
    """

    turn: TurnConfig
    barge: BargeInConfig
    frame_ms: float
    state: ConvState = ConvState.LISTENING
    auto_turns: bool = True
    speech: SpeechDetector = field(init=False)
    levels: UserLevel = field(init=False)
    endpointing: Endpointing = field(init=False)
    barge_in: BargeInJudge = field(init=False)
    backchannels: AgentBackchannels = field(init=False)
    _user: UserTurn = field(init=False, default_factory=UserTurn)
    _force_take: bool = field(init=False, default=False)
    _commit_answers: bool = field(init=False, default=True)  # the committed turn is answered (False: only recorded)
    _respond_after_commit: ResponseOptions | None = field(init=False, default=None)  # a response asked for meanwhile

    def __post_init__(self) -> None:
        self.speech = SpeechDetector(self.turn, self.frame_ms)
        self.levels = UserLevel(self.turn.background_margin_db)
        self.endpointing = Endpointing(self.turn)
        self.barge_in = BargeInJudge(self.barge, self.frame_ms)
        self.backchannels = AgentBackchannels(self.turn)

    # ------------------------------------------------------------------ client requests
    def commit(self, t_ms: float, answer: bool = True) -> tuple[list[Action], list[Event]]:
        """The client says the user's turn is over (``input_audio_buffer.commit``).

        ``answer`` False only records the user's words once transcribed (OpenAI's manual
        mode: the client sends ``response.create`` for the answer)."""
        actions: list[Action] = []
        if not self._user.open and self.speech.active:
            self._open_turn(self.speech.onset_ms)
        u = self._user
        if not u.open:
            return actions, []
        u.speech_end_ms = self.speech.last_voice_ms
        if u.requested_end_ms != u.speech_end_ms:
            u.final_text = None
            actions.append(u.request_final())
        self._force_take = True
        self._commit_answers = answer
        return actions, []

    def respond(self, t_ms: float, options: ResponseOptions) -> tuple[list[Action], list[Event]]:
        """Answer now (``response.create``): from the history as it stands, or, while a
        committed turn is being transcribed, as soon as its words are in."""
        if self._force_take:
            self._respond_after_commit = options
            return [], []
        events: list[Event] = []
        actions: list[Action] = [DiscardDraft(), StopOutput(), TakeTurn("", t_ms, options)]
        self._user = UserTurn()
        self.barge_in.end()
        self._set_state(ConvState.THINKING, t_ms, "response requested", events)
        return actions, events

    def _committed_options(self) -> ResponseOptions:
        """How the turn a client committed is answered; resets the commit."""
        opts = self._respond_after_commit or ResponseOptions(answer=self._commit_answers)
        self._force_take, self._commit_answers, self._respond_after_commit = False, True, None
        return opts

    def clear(self) -> list[Action]:
        """Forget the user's turn in progress (``input_audio_buffer.clear``)."""
        self._user = UserTurn()
        self._force_take, self._commit_answers, self._respond_after_commit = False, True, None
        return [DiscardDraft()]

    def take_text_turn(self, text: str, t_ms: float) -> tuple[list[Action], list[Event]]:
        """Answer a typed user message now (``conversation.item.create`` + ``response.create``)."""
        events: list[Event] = []
        actions: list[Action] = [DiscardDraft(), StopOutput(), TakeTurn(text, t_ms)]
        events.append(TurnTaken(t_ms, t_ms, text, 1.0))
        self._user = UserTurn()
        self.barge_in.end()
        self._set_state(ConvState.THINKING, t_ms, "text turn", events)
        return actions, events

    def cancel(self, t_ms: float) -> tuple[list[Action], list[Event]]:
        """Stop the agent's response (``response.cancel``)."""
        events: list[Event] = []
        self.barge_in.end()
        self._set_state(ConvState.LISTENING, t_ms, "cancelled", events)
        return [StopOutput()], events

    @property
    def turn_open(self) -> bool:
        """A user turn (or a possible barge-in) is being heard and not yet decided."""
        return self._user.open or self.barge_in.burst is not None or self.speech.active

    # ------------------------------------------------------------------ helpers
    def _set_state(self, state: ConvState, t_ms: float, reason: str, events: list[Event]) -> None:
        if state != self.state:
            events.append(StateChanged(t_ms, state.value, self.state.value, reason))
            self.state = state

    def _open_turn(self, start_ms: float) -> None:
        self._user = UserTurn(open=True, start_ms=start_ms)
        self.levels.new_turn()

    def _withdraw_final(self, actions: list[Action]) -> None:
        """The user went on: the transcript asked for (and its draft) no longer fits."""
        actions.append(DiscardDraft())
        # A quiet frame inside speech is no pause: going on after it is not narrating.
        finished_at = None if self._user.asked_on_quiet else self.turn.eot_midpoint
        self._user.forget_final(finished_at=finished_at)

    # ------------------------------------------------------------------ the tick
    def update(
        self, t_ms: float, signals: ListenSignals, agent: AgentStatus
    ) -> tuple[list[Action], list[Event]]:
        """One tick of decisions.

        Args:
            t_ms: stream time of the start of the frame just heard.
            signals: what the model heard in it.
            agent: what the output side is doing.

        Returns:
            (commands for the model, events to emit).
        """
        actions: list[Action] = []
        events: list[Event] = []
        onset = self.barge.pause_onset_ms if self.state in _AGENT_OUT else self.turn.speech_onset_ms
        prob = signals.vad_prob
        if signals.echo_explained and (self.state in _AGENT_OUT or agent.aside):
            # The agent hearing its own residual echo (of a response, or of its "mhm"
            # while it listens), not the user: it must not start speech, nor move the
            # end of the user's last voice.
            prob = 0.0
        # Speech only *starts* once it reaches this user's level: far quieter talk is
        # background. Its soft first syllables still belong to it (see SpeechDetector).
        # While the agent speaks, softer speech may start too when nothing else (echo,
        # talk heard before) explains it: a soft interruption pauses the output at once.
        at_level = self.levels.reaches(signals.energy_db)
        may_start = at_level
        if self.state in _AGENT_OUT:
            may_start = self.levels.may_start(t_ms, signals.energy_db, signals.echo_residual_db)
        heard = self.speech.update(t_ms, prob, onset, may_start)
        if heard.voiced and (at_level or self.state not in _AGENT_OUT):
            # Over the agent, only the user's own level teaches it: a soft burst may be
            # someone else's talk.
            self.levels.hear(signals.energy_db)

        if heard.started:
            events.append(SpeechStarted(heard.onset_ms))
        if heard.stopped:
            events.append(SpeechStopped(heard.last_voice_ms))

        # Output side moved on by itself.
        if self.state == ConvState.THINKING and agent.playing:
            self._set_state(ConvState.SPEAKING, t_ms, "audio", events)
        if self.state in (ConvState.SPEAKING, ConvState.THINKING) and agent.finished:
            self._set_state(ConvState.LISTENING, t_ms, "response done", events)

        if self.state == ConvState.LISTENING:
            self._listening(t_ms, heard, signals, actions, events)
        elif self.state == ConvState.THINKING:
            if heard.started and self.auto_turns:
                # The user went on: the turn was not over. Drop the answer; what they say
                # now is heard as the rest of their turn (its first words are in the
                # history already), and they are narrating: a finished sentence waits.
                actions.append(StopOutput())
                self._open_turn(heard.onset_ms)
                self._user.narrating = True
                self._set_state(ConvState.LISTENING, t_ms, "user continued", events)
        elif self.state == ConvState.SPEAKING:
            if heard.started and self.barge.enabled and self.auto_turns:
                self.barge_in.begin(heard, signals.energy_db, at_level)
                actions.append(PauseOutput())
                events.append(BargeIn(t_ms, "pause", agent.response_id))
                self._set_state(ConvState.PAUSED, t_ms, "user speech", events)
        elif self.state == ConvState.PAUSED:
            self._paused(t_ms, heard, signals, agent, actions, events)
        return actions, events

    def _listening(
        self,
        t_ms: float,
        heard: SpeechFrame,
        signals: ListenSignals,
        actions: list[Action],
        events: list[Event],
    ) -> None:
        if heard.started:
            if not self._user.open:
                self._open_turn(heard.onset_ms)
            elif self._user.asked:
                self._withdraw_final(actions)
        u = self._user
        if not u.open:
            return
        # A frame fallen to silence by its level, while the VAD still says voice (it lags
        # the real end by a frame or three): the transcript is asked for at the first one,
        # so the answer's chain starts that much sooner.
        quiet = heard.voiced and self.levels.quiet(signals.energy_db)
        quiet_tail = quiet and u.within_quiet_grace(heard.last_voice_ms)  # the VAD's lag after it
        if heard.voiced and not quiet_tail:
            # The turn's pause is timed from its last voice: not from the quiet tail the
            # VAD still voices after the transcript was asked at it, nor from a blip in
            # the pause that never became speech (the detector's own last voice moves
            # with both).
            u.speech_end_ms = heard.last_voice_ms
        silence = heard.end_ms - u.speech_end_ms
        # Taken even inside the hangover: a transcript asked at a quiet frame may be back
        # before the VAD lets go (voice again below drops it).
        u.hear_final(signals)
        look = u.look_again() if self.auto_turns and u.final_text else None
        if look is not None:
            actions.append(look)
        if heard.active:
            if heard.voiced and not quiet:
                u.quiet_spent = False
            if heard.voiced and u.asked and not quiet_tail:
                # Voice again inside the hangover (or quiet voice going on): the
                # transcript asked for (below) ends too early.
                u.quiet_spent = quiet
                self._withdraw_final(actions)
            if not heard.voiced and self.auto_turns and self.endpointing.ask_in_hangover(u, silence):
                actions.append(u.request_final())
            elif quiet and self.auto_turns and not u.quiet_spent and self.endpointing.ask_on_quiet(u):
                actions.append(u.request_final(on_quiet=True))
            return
        if heard.pending:
            return  # a run of voice that may be the user going on: nothing is decided in it
        if self.auto_turns and self.endpointing.ask_after_speech(u, silence):
            if self.endpointing.too_short(u):
                self._user = UserTurn()  # a click or a cough: no turn
                return
            actions.append(u.request_final())
            return
        may_go_on = u.context is not None and u.context.may_go_on
        # The agent's "mhm" waits for the pause the VAD hears (its last voice, tail and all):
        # a gap shorter than that is the user drawing breath, not a pause to fill.
        if self.auto_turns and self.backchannels.due(t_ms, u.speech_ms, heard.silence_ms, u.eot_score, may_go_on):
            actions.append(Backchannel())
        if u.final_text is None:
            return
        if not u.final_text.strip():
            # Nothing intelligible: not a turn (noise, breath).
            actions.append(DiscardDraft())
            self._user = UserTurn()
            if self._force_take:
                asked = self._respond_after_commit
                self._committed_options()
                if asked is not None:  # a response asked for after the commit answers the history
                    actions.extend([StopOutput(), TakeTurn("", t_ms, asked)])
                    self._set_state(ConvState.THINKING, t_ms, "response requested", events)
            return
        if self._force_take or (self.auto_turns and self.endpointing.turn_over(u, silence)):
            opts = self._committed_options() if self._force_take else ResponseOptions()
            actions.append(TakeTurn(u.final_text, u.speech_end_ms, opts))
            self.levels.learn()
            events.append(TurnTaken(t_ms, u.speech_end_ms, u.final_text, u.eot_score or 0.0))
            if opts.answer:
                self._set_state(ConvState.THINKING, t_ms, "end of turn", events)
            self._user = UserTurn()

    def _paused(
        self,
        t_ms: float,
        heard: SpeechFrame,
        signals: ListenSignals,
        agent: AgentStatus,
        actions: list[Action],
        events: list[Event],
    ) -> None:
        judged = self.barge_in.judge(t_ms, heard, signals, agent, self.levels.reaches(signals.energy_db))
        if judged.transcribe is not None:
            actions.append(judged.transcribe)
        if judged.background_db is not None:
            self.levels.heard_background(t_ms, judged.background_db)
        if judged.backchannel is not None:
            events.append(UserBackchannel(t_ms, judged.backchannel))
        if judged.verdict == Verdict.INTERRUPTION:
            burst = self.barge_in.end()
            assert burst is not None
            actions.append(StopOutput())
            events.append(BargeIn(t_ms, "confirmed", agent.response_id))
            self.levels.learn()
            self._open_turn(burst.start_ms)
            self._user.interrupting = True
            self._user.speech_end_ms = heard.last_voice_ms
            self._set_state(ConvState.LISTENING, t_ms, "interrupted", events)
        elif judged.verdict == Verdict.FALSE_ALARM:
            actions.append(ResumeOutput())
            events.append(BargeIn(t_ms, "false_alarm", agent.response_id))
            self.barge_in.end()
            self._set_state(ConvState.SPEAKING, t_ms, "false alarm", events)
