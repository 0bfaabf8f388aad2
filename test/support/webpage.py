"""What a reader of one of the relay's web pages gets: language, title, links, images.

Shared by the render tests (the pages as Salt renders them) and the browser
test (the DOM as Chromium built it from the pages the relay serves), so
both judge a page by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class PageFacts:
    lang: str = ""
    title: str = ""
    links: list[dict[str, str]] = field(default_factory=list)  # attributes of every <a href>
    images: list[dict[str, str]] = field(default_factory=list)  # attributes of every <img>

    def link(self, css_class: str) -> str:
        """The href of the only link with ``css_class``."""
        hrefs = [a["href"] for a in self.links if css_class in a.get("class", "").split()]
        assert len(hrefs) == 1, f"{len(hrefs)} links of class {css_class!r}: {hrefs}"
        return hrefs[0]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.facts = PageFacts()
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.facts.lang = values.get("lang", "")
        elif tag == "title":
            self._in_title = True
        elif tag == "a" and "href" in values:
            self.facts.links.append(values)
        elif tag == "img":
            self.facts.images.append(values)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.facts.title += data


def page_facts(html: str) -> PageFacts:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    collector.facts.title = " ".join(collector.facts.title.split())
    return collector.facts


def accessibility_problems(facts: PageFacts) -> list[str]:
    """What keeps a screen reader (or a search result) from presenting the page: empty when none."""
    problems = []
    if not facts.lang.strip():
        problems.append("<html> has no lang")
    if not facts.title:
        problems.append("no <title> text")
    problems += [
        f"<img src={img.get('src', '')!r}> has no text alternative (alt)"
        for img in facts.images
        if not img.get("alt", "").strip()
    ]
    return problems
