"""Shared training state: thread counts per (re)start reach the model card."""

from testtime.zoo.training import TrainState, note_threads, threads_text


def test_a_resume_on_another_thread_count_is_recorded_and_carded():
    state = TrainState()
    note_threads(state, 2)
    state.step = 5100
    note_threads(state, 2)  # resumed on the same count: nothing new
    assert state.threads == [{"at_step": 0, "threads": 2}]
    note_threads(state, 1)
    assert state.threads == [{"at_step": 0, "threads": 2}, {"at_step": 5100, "threads": 1}]
    info = {"threads": 1, "thread_segments": state.threads}
    assert threads_text(info) == "on 2 CPU thread(s) from step 0, then 1 CPU thread(s) from step 5100"
    # one segment, or a run from before segments were recorded: the count it was exported with
    assert threads_text({"threads": 2, "thread_segments": state.threads[:1]}) == "on 2 CPU thread(s)"
    assert threads_text({"threads": 1}) == "on 1 CPU thread(s)"
