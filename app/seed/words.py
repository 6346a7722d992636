"""The vocabulary synthetic posts and names are drawn from."""

from __future__ import annotations

import random

_WORDS_TEXT = """
    the a an and or but so if when then just really very quite still already never always today
    tomorrow yesterday tonight morning evening week weekend year time people friends family team
    city home work office train coffee tea lunch dinner breakfast music song album film book
    story game match news idea plan project code bug release update weather rain sun snow wind
    walk run ride trip photo picture garden cat dog bird tree sea river mountain park street
    market shop library school class talk meeting call think know feel want need like love hate
    try make take give find see look watch read write listen play build fix ship learn start
    finish share post wait hope guess good great nice bad new old big small long short happy
    tired busy quiet loud early late strange funny lovely amazing boring simple hard easy free
    open warm cold finally honestly apparently maybe probably definitely actually again here
    there everyone nobody something nothing anything this that these those my your our their
    """
WORDS = tuple(_WORDS_TEXT.split())

_HASHTAGS_TEXT = """
    photography python music coffee OpenSource travel gaming art books running cats dogs science
    news football cooking film design climate space history jazz hiking writing linux rustlang
    gardening cycling chess anime podcast tbt MondayMotivation foodie fitness nature sunset
    DevLife startup AI
    """
HASHTAGS = tuple(_HASHTAGS_TEXT.split())

CONTENT_WARNINGS = ("spoilers", "politics", "food", "eye contact", "long post", "mental health")

_FIRST_NAMES_TEXT = """
    Ada Alan Grace Linus Margaret Dennis Barbara Ken Frances Edsger Radia Guido Hedy Tim
    Katherine John Sophie Yukihiro Anita Donald Mary Niklaus Karen Bjarne Lynn Rasmus
    """
FIRST_NAMES = tuple(_FIRST_NAMES_TEXT.split())
_LAST_NAMES_TEXT = """
    Lovelace Turing Hopper Torvalds Hamilton Ritchie Liskov Thompson Allen Dijkstra Perlman
    Rossum Lamarr Berners Johnson McCarthy Wilson Matsumoto Borg Knuth Keller Wirth Jones
    Stroustrup Conway Lerdorf
    """
LAST_NAMES = tuple(_LAST_NAMES_TEXT.split())


def display_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
