"""The one place where actors meet the platform.

On a Python-capable edge host this import would be ``from workers import DurableObject``;
locally the same shape comes from the local runtime. Actor modules import it from here.
"""

from local_runtime.durable_objects import DurableObject, DurableObjectState, OutputGate, pipelined

__all__ = ["DurableObject", "DurableObjectState", "OutputGate", "pipelined"]
