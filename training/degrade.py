"""The training degradation (paper Eq. 6): the engine's `engine.faceme.degrade`, under its training name.

The module moved into the engine (learning a person from the album trains on the same pairs). This name
stays for training/ and its users, and it is the very same module object, not a copy of its names: a
step replaced on one (tests replace the steps to check their order) is replaced on both.
"""

import sys

from engine.faceme import degrade as _engine_degrade

sys.modules[__name__] = _engine_degrade
