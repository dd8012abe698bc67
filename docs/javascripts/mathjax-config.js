// MathJax 3 settings for pymdownx.arithmatex (generic mode): it wraps inline math in
// \( \) and display math in \[ \] inside elements of class "arithmatex"; only those are
// typeset. Notebook (lab) pages keep $...$ in rendered markdown cells, so their
// markdown containers are processed too.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
  svg: { fontCache: "global" },
};
