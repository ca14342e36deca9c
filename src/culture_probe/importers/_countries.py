"""Country and region names of public datasets, mapped to the taxonomy's region ids."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from culture_probe.errors import InputError, expected_one_of
from culture_probe.taxonomy import Taxonomy

REGION_CATEGORIES = ("region", "subnational_region")

# Spellings used by public datasets that are neither the taxonomy name nor the WVS name: Pew and
# GlobalOpinionQA ("Britain", "S. Korea"), BLEnD's file names ("UK", "West_Java").
EXTRA_NAMES = {
    "uk": "GB",
    "britain": "GB",
    "england": "GB",
    "usa": "US",
    "us": "US",
    "u s": "US",
    "america": "US",
    "s korea": "KR",
    "korea": "KR",
    "republic of korea": "KR",
    "czech republic": "CZ",
    "czech rep": "CZ",
    "russian federation": "RU",
    "viet nam": "VN",
    "hong kong": "HK",
    "macau": "MO",
    "taiwan": "TW",
    "northern nigeria": "NG-NORTH",
    "west java": "ID-JB",
    "assam": "IN-AS",
}


def normalise_name(name: str) -> str:
    """Lower case, no accents, punctuation and underscores as spaces, no leading 'the'."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()
    return re.sub(r"^the ", "", text)


@dataclass
class RegionResolver:
    """Resolve dataset country names (``Japan``, ``Great Britain``, ``Hong Kong SAR``) to region ids.

    Each region value's id, ``name``, ``wvs_name`` and ISO alpha-3 code are known names, plus the
    spellings in :data:`EXTRA_NAMES`.

    Example:
        >>> resolver = RegionResolver.from_taxonomy(load_taxonomy("taxonomy/taxonomy.yaml"))  # doctest: +SKIP
        >>> resolver.resolve("Great Britain", path="data.json")  # doctest: +SKIP
        'GB'
    """

    names: dict[str, str] = field(default_factory=dict)
    display: dict[str, str] = field(default_factory=dict)  # region id -> readable name

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> RegionResolver:
        resolver = cls()
        for category_id in REGION_CATEGORIES:
            category = taxonomy.category(category_id)
            if category is None:
                continue
            for value in category.values:
                resolver.display[value.id] = value.name
                spellings = [value.id, value.name, value.attributes.get("wvs_name")]
                spellings.append(value.attributes.get("iso3166_alpha3"))
                for spelling in spellings:
                    if spelling:
                        resolver.names.setdefault(normalise_name(str(spelling)), value.id)
        for spelling, region_id in EXTRA_NAMES.items():
            if region_id in resolver.display:
                resolver.names.setdefault(spelling, region_id)
        return resolver

    def find(self, name: str) -> str | None:
        """The region id for ``name``, or None."""
        return self.names.get(normalise_name(name))

    def resolve(
        self, name: str, *, path: str, line: int | None = None, key: str = "country"
    ) -> str:
        """The region id for ``name``, or an InputError with the closest taxonomy names."""
        found = self.find(name)
        if found is not None:
            return found
        choices = sorted(set(self.display.values()))
        raise InputError(
            f"unknown country or region '{name}': not a name, WVS name or code of a taxonomy "
            "region (add it to taxonomy/taxonomy.yaml, or leave it out)",
            path=path,
            line=line,
            key=key,
            hint=expected_one_of(name, choices),
        )
