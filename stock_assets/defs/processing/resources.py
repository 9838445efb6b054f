"""How news is scored: VADER by default, and a finance lexicon the user supplies."""

import dagster as dg

from stock_assets.features.news import FinanceLexicon


class NewsLexicon(dg.ConfigurableResource):
    """The lexicons `news_sentiment` scores articles with."""

    wordlists: str = ""
    """A folder with Loughran-McDonald's positive.txt and negative.txt (STOCK_ASSETS_LM_WORDLISTS);
    empty: VADER only."""

    def finance(self) -> FinanceLexicon | None:
        return FinanceLexicon.from_folder(self.wordlists) if self.wordlists else None
