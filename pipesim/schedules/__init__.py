"""Schedule policies: each decides, per device, which op runs next."""

from pipesim.schedules.base import ClosedForm, DeviceProgram, DeviceView, Policy, StaticPolicy
from pipesim.schedules.registry import get_policy, registered_policies

__all__ = [
    "ClosedForm",
    "DeviceProgram",
    "DeviceView",
    "Policy",
    "StaticPolicy",
    "get_policy",
    "registered_policies",
]
