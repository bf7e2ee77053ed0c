"""What the standard scenario set says, and in which espeak-ng voices and speeds:
the one source of the eval's questions, which the benches ask too
(``duplex.bench.speech``)."""

from __future__ import annotations

VOICES = [
    "en-us",
    "en-us+f3",
    "en-us+m3",
    "en-029",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-us+f4",
    "en-us+m5",
]
SPEEDS = [135, 150, 165, 180, 195]

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Can you recommend a good book to read?",
    "What should I cook for dinner tonight?",
    "Why is the sky blue?",
    "How far away is the moon?",
    "What is a good way to start the morning?",
    "Tell me a fun fact about octopuses.",
    "What time of year is best for visiting Japan?",
    "How do I make a cup of green tea?",
    "What is the largest ocean on Earth?",
    "Can you suggest a name for my new puppy?",
    "How do plants make their food?",
    "How can I learn to play the guitar?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water?",
    "Give me a tip for staying focused at work.",
    "What does a bee do all day?",
    "How long does it take to walk ten kilometres?",
    "Why do cats purr?",
]

# (first part, second part): the pause falls where the sentence is clearly unfinished
PAUSED = [
    ("I was wondering if you could tell me", "how far away the moon is."),
    ("Could you explain to me", "why the sky is blue?"),
    ("I need some ideas for", "what to cook for dinner tonight."),
    ("My friend and I were trying to remember", "who wrote Romeo and Juliet."),
    ("Can you give me", "a good tip for staying focused at work?"),
    ("I would like to know", "how many legs a spider has."),
    ("So what I really want to understand is", "how plants make their food."),
    ("Before we go on, tell me", "the boiling point of water."),
    ("I have been thinking about", "learning to play the guitar. Any advice?"),
    ("What would be the best time of year", "to visit Japan?"),
]

BACKCHANNELS = ["mhm", "yeah", "uh-huh", "right", "okay", "I see", "mm", "yes", "sure", "got it"]

INTERRUPTIONS = [
    "Wait, sorry, can you tell me about dogs instead?",
    "Hold on, actually, what about the weather tomorrow?",
    "Sorry to interrupt, but how do I boil an egg?",
    "No wait, I meant something else entirely.",
    "Stop, stop. Can you say that more slowly?",
    "Actually, never mind that. What time is it in Tokyo?",
    "Excuse me, could you repeat the first part?",
    "Hang on, let me ask you something different.",
    "Sorry, I think you misunderstood my question.",
    "Wait a second, what does that word mean?",
]

BACKGROUND_TALK = [
    "Did you remember to buy milk on the way home? I think we are out again.",
    "The meeting got moved to Thursday afternoon, so we have a bit more time.",
    "Turn left at the next corner and then keep going straight for a while.",
    "I told him the package would arrive by Friday, but it is still not here.",
    "We should really repaint the kitchen before the summer is over.",
    "The train was twenty minutes late this morning because of the rain.",
]
