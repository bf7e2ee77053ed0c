"""The policy layer: what the agent does with what it hears, one behaviour a module.

- ``turn_taker``: the conversation states and their transitions;
- ``speech``: speech onsets with hysteresis, the user's level and the background;
- ``end_of_turn``: is the user's turn over, and when to ask for its transcript;
- ``barge_in``: is user sound while the agent speaks an interruption;
- ``backchannel``: short acknowledgements, the user's and the agent's;
- ``echo``: is what the microphone hears the agent's own echo (level and words);
- ``echo_cancel``: the echo cancellers that clean the microphone first;
- ``words``: the words of a transcript as these compare them.
"""
