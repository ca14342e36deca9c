"""culture-probe: is it culture or is it wording?

Probe language models with many wordings of culturally framed questions and decompose the variance of
their answers into culture, wording and option order.
"""

__version__ = "0.1.0"
