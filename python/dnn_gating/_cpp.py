"""How a module keeps its C++ layer: made on first use from the module's own
settings, left out of pickles and deep copies (made again after them)."""


class CppLayer:
    """Mixin: `self._cpp()` is the torch.classes object `self._make_cpp()` makes."""

    def _cpp(self):
        layer = self.__dict__.get("_cpp_layer")
        if layer is None:
            layer = self._make_cpp()
            self.__dict__["_cpp_layer"] = layer
        return layer

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_cpp_layer", None)
        return state


def pair(value):
    """nn.Conv2d's geometry (an int or a 2-tuple) as a list of two ints."""
    if isinstance(value, int):
        return [value, value]
    return [int(v) for v in value]


def check_plain_conv(name, conv, bias_allowed):
    """ValueError unless the nn.Conv2d settings are those the library computes."""
    if tuple(conv.dilation) != (1, 1):
        raise ValueError(f"{name}: dilation must be 1, got {conv.dilation}")
    if conv.groups != 1:
        raise ValueError(f"{name}: groups must be 1, got {conv.groups}")
    if conv.padding_mode != "zeros":
        raise ValueError(f"{name}: padding_mode must be 'zeros', got {conv.padding_mode!r}")
    if isinstance(conv.padding, str):
        raise ValueError(f"{name}: padding must be numbers, got {conv.padding!r}")
    if not bias_allowed and conv.bias is not None:
        raise ValueError(f"{name}: bias must be False (the gate's BatchNorm follows it)")
