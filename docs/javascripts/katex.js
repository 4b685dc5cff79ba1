// Typeset the page's math with the KaTeX copy in javascripts/katex/ (no network needed).
// pymdownx.arithmatex (generic mode) leaves \( \) and \[ \] in the Markdown pages; the
// notebook's cells keep $ and $$. Material's document$ fires on every page load, instant
// navigation included.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "$", right: "$", display: false },
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
