"""``Registry``: register / get / build / make, duplicates, unknown names with suggestions, case-insensitivity."""

from __future__ import annotations

import pytest

from irad.errors import IradError, UnknownNameError
from irad.registry import Registry


@pytest.fixture
def reg():
    r: Registry = Registry("widget")

    @r.register("alpha", colour="red")
    def alpha(size: int = 1, scale: float = 1.0):
        """An alpha widget.

        Longer description.
        """
        return ("alpha", size, scale)

    @r.register("BetaNet")
    def beta():
        return "beta"

    return r


def test_register_returns_the_factory_unchanged(reg):
    def gamma():
        return 3

    assert reg.register("gamma")(gamma) is gamma
    assert reg.get("gamma").factory is gamma


def test_get_build_make(reg):
    entry = reg.get("alpha")
    assert entry.name == "alpha" and entry.meta == {"colour": "red"}
    assert entry.summary == "An alpha widget."
    assert reg.get("betanet").summary == ""
    assert reg.build("alpha") == ("alpha", 1, 1.0)
    assert reg.build("alpha", size=3, scale=0.5) == ("alpha", 3, 0.5)
    assert reg.make({"name": "alpha", "args": {"size": 7}}) == ("alpha", 7, 1.0)
    assert reg.make({"name": "BETANET"}) == "beta"


def test_names_len_iter_contains(reg):
    assert reg.names() == ["alpha", "betanet"]
    assert list(reg) == ["alpha", "betanet"] and len(reg) == 2
    assert "alpha" in reg and "ALPHA" in reg and "BetaNet" in reg
    assert "gamma" not in reg and 3 not in reg and None not in reg


def test_case_insensitive(reg):
    assert reg.get("ALPHA") is reg.get("alpha") is reg.get("Alpha")
    assert reg.get("betanet").name == "betanet"


@pytest.mark.parametrize("name", ["alpha", "ALPHA", "betanet"])
def test_duplicate_registration_is_refused(reg, name):
    with pytest.raises(ValueError, match="already registered"):
        reg.register(name)(lambda: None)
    assert reg.build("alpha") == ("alpha", 1, 1.0)  # the original entry survives


def test_unknown_name_suggests_close_matches(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.get("alpah")
    msg = str(info.value)
    assert "Did you mean 'alpha'" in msg
    assert "widget" in msg and "Available: alpha, betanet" in msg
    assert not msg.startswith('"')  # plain text, not KeyError's quoted repr
    assert isinstance(info.value, KeyError) and isinstance(info.value, IradError)


def test_unknown_name_without_close_match_has_no_suggestion(reg):
    with pytest.raises(UnknownNameError) as info:
        reg.build("zzzzzz")
    assert "Did you mean" not in str(info.value)
    with pytest.raises(UnknownNameError):
        reg.make({"name": "nothing", "args": {}})


def test_registries_are_independent():
    a: Registry = Registry("a")
    b: Registry = Registry("b")
    a.register("x")(lambda: 1)
    b.register("x")(lambda: 2)  # same name in another registry is fine
    assert a.build("x") == 1 and b.build("x") == 2


def test_project_registries_resolve_names():
    from irad.classifiers import CLASSIFIERS
    from irad.data import DATASETS

    assert CLASSIFIERS.get("ResNet20").name == "resnet20"
    with pytest.raises(UnknownNameError, match="resnet20"):
        CLASSIFIERS.get("resnet2O")
    assert "cifar10" in DATASETS


def test_summary_is_the_first_sentence_on_one_line_without_rest_marks():
    from irad.registry import Registry

    reg = Registry("thing")

    @reg.register("a")
    def a():
        """Random resizing (Xie et al. 2018), drawn per image; randomised (``seed``: the same
        output on every call). Second sentence. Eq. 5 applies.

        Details."""

    @reg.register("b")
    def b():
        pass

    assert reg.get("a").summary == ("Random resizing (Xie et al. 2018), drawn per image; randomised (seed: the same "
                                    "output on every call).")
    assert reg.get("b").summary == ""


def test_defense_info_is_one_typed_record_for_any_defense():
    import irad
    from torch import nn

    from irad.defenses import DefenseInfo, defense_info
    from irad.weights import WEIGHTS

    info = defense_info(irad.load_defense("irad"))
    assert isinstance(info, DefenseInfo) and info.name == "irad" and not info.randomized
    assert info.sha256 == WEIGHTS["irad-cifar10-cpu"].sha256 and "resnet20" in info.trained_against
    assert not info.partial and info.meta["sha256"] == info.sha256
    random = defense_info(irad.load_defense("bilinear-sv"))
    assert random.name == "bilinear-sv" and random.randomized and random.sha256 is None and random.trained_against == ()
    plain = defense_info(nn.Identity())  # a user's module, never registered
    assert plain == DefenseInfo()
    partial = nn.Identity()
    partial.meta = {"sha256": "ab", "steps_done": 3, "steps_planned": 10}
    assert defense_info(partial).partial and defense_info(partial).sha256 == "ab"


def test_every_registered_defense_is_a_defense_whose_info_is_its_typed_record():
    """The toolkit's defenses share one base class: each built-in one is a ``Defense`` whose ``info`` is what
    ``defense_info`` reads, with its registry name; a plain ``nn.Module`` subclassing it gets the defaults."""
    import irad
    import torch
    from irad.defenses import DEFENSES, Defense, DefenseInfo, defense_info

    # the package's own (other tests register plugins of their own in the same registry)
    names = [n for n in DEFENSES.names() if DEFENSES.get(n).factory.__module__.startswith("irad.")]
    assert {"none", "irad", "disco", "jpeg", "stl", "nrp", "diffpure", "irad+diffpure"} <= set(names)
    for name in names:
        defense = irad.load_defense(name)
        assert isinstance(defense, Defense), name
        assert defense.info == defense_info(defense) and defense.info.name == name, name
    assert irad.load_defense("irad").info.sha256 is not None and irad.load_defense("jpeg").info.sha256 is None

    class Halve(Defense):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images / 2

    mine = Halve()
    assert mine.info == DefenseInfo() and mine.meta == {} and mine.defense_name is None
    assert torch.equal(mine(torch.ones(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 0.5))
    # the base class imports nothing of the package, so the resampling core and the defenses build on it without
    # an import cycle (irad.resampling -> irad.defense_base, never -> irad.defenses)
    import ast

    import irad.defense_base
    import irad.resampling

    def package_imports(module) -> list[str]:
        """The modules of the package that ``module`` imports (relative imports, or absolute ones of irad)."""
        tree = ast.parse(open(module.__file__).read())
        found = [n.module or "." for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and (n.level or "irad" in (n.module or ""))]
        return found + [a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                        for a in n.names if "irad" in a.name]

    assert package_imports(irad.defense_base) == []
    assert not any("defenses" in name for name in package_imports(irad.resampling))
    assert issubclass(irad.resampling.ImageResampler, Defense)
