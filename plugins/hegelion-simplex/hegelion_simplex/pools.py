"""Word pools for the synthetic world the generators draw from.

Plain tuples, so drawing from them is cheap; their sizes set how varied the rows
are (the benchmark reports the duplicate rate).
"""

from __future__ import annotations

NAMES = (
    "Ada", "Bram", "Cora", "Dmitri", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Kaia", "Lorenz", "Mira", "Nico", "Odile", "Pavel", "Quinn", "Rosa", "Soren", "Talia",
    "Ugo", "Vera", "Wim", "Xenia", "Yusuf", "Zora", "Anselm", "Brigid", "Casimir", "Dagny",
    "Emeric", "Freya", "Gideon", "Hedda", "Ivo", "Junia", "Kasper", "Liesel", "Matthias", "Nadia",
    "Oskar", "Petra", "Rafael", "Sigrun", "Tobias", "Ulla", "Valentin", "Wren", "Ysolde", "Zeno",
)

PLACES = (
    "north tower", "mill", "east gate", "harbour", "archive", "orchard", "forge", "chapel",
    "granary", "lighthouse", "market hall", "river ford", "old quarry", "stables", "library",
    "bell tower", "bathhouse", "watchpost", "vineyard", "salt pans", "observatory", "tannery",
    "ferry landing", "cloister", "west bridge", "copper mine", "herb garden", "boathouse",
    "smithy", "cistern", "ropewalk", "printing house", "lower terrace", "counting house",
    "glassworks", "dye works", "signal hill", "pilgrim inn", "toll house", "kiln",
)

OBJECTS = (
    "ledger", "lantern", "brass key", "map case", "spare sail", "seed chest", "compass",
    "tide table", "rope coil", "iron kettle", "wax seals", "star chart", "tool roll",
    "medicine box", "ink stone", "grain scale", "signal flag", "copper bell", "hand drill",
    "field glass", "salt jar", "ration tin", "loom shuttle", "surveyor's chain", "glass prism",
    "bread oven peel", "bee smoker", "lock pick set", "winch handle", "clay tablets",
    "spindle", "pulley block", "oil flask", "dye pot", "sundial", "barometer", "quill case",
    "tally sticks", "fishing net", "wool cards",
)

ITEMS_PLURAL = (
    "jars", "apples", "bolts", "candles", "tiles", "nails", "bottles", "loaves", "bricks",
    "spools", "lamps", "crates", "stones", "coins", "rivets", "pegs", "bowls", "plates",
)

COLOURS = ("red", "blue", "green", "yellow", "white", "black", "amber", "violet", "grey", "orange")

HIVES = (
    "Cartographers", "Lamplighters", "Tidewatchers", "Archivists", "Beekeepers", "Ferrymen",
    "Stonecutters", "Weavers", "Surveyors", "Bellringers", "Gardeners", "Glassblowers",
    "Chroniclers", "Millers", "Starwatchers", "Herbalists", "Ropemakers", "Wayfinders",
)

VERBS_PAST = (
    ("repaired", "repair"), ("found", "find"), ("cleaned", "clean"), ("counted", "count"),
    ("borrowed", "borrow"), ("painted", "paint"), ("weighed", "weigh"), ("sealed", "seal"),
    ("inspected", "inspect"), ("packed", "pack"), ("sharpened", "sharpen"), ("hid", "hide"),
)

WHEN = ("yesterday", "this morning", "last week", "two days ago", "at dawn", "last night",
        "on market day", "after the storm")

OCCUPATIONS = ("singer", "wrestler", "poet", "juggler", "sculptor", "painter", "dancer", "chef")

# Belief statements: (template, needs) where {place}, {place2}, {object}, {name} fill in.
BELIEFS = (
    "the well at the {place} stays clean through summer",
    "the road past the {place} floods after heavy rain",
    "the {object} in the {place} is the oldest in town",
    "{name} reaches the {place} before sunrise every day",
    "the {place} can shelter the whole village in a storm",
    "the bridge by the {place} can carry a loaded cart",
    "the soil near the {place} is good for barley",
    "the clock at the {place} runs five minutes slow",
    "rats nest under the floor of the {place}",
    "the path from the {place} to the {place2} is the shortest way",
    "{name} keeps accurate records at the {place}",
    "the spring near the {place} never freezes",
    "the roof of the {place} will last another winter",
    "the {place} was built before the {place2}",
    "fog reaches the {place} earlier than the {place2}",
    "the {object} at the {place} was made by {name}",
    "the night guard at the {place} never misses a round",
    "the {place} is cheaper to heat than the {place2}",
    "the owls in the {place} hunt only after midnight",
    "{name} can read the old script in the {place} archive",
)

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
