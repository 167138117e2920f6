"""BGP mode, pure part: config model, route selection, exabgp command text, BFD codec and state machine.

Nothing here touches a socket, a process or a clock: time is always passed in, so every rule is
testable with plain tables. The adapters live in ``lbspeaker.speaker.bgp``.
"""
