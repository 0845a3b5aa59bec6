"""The review page's inline style and script (the page fetches nothing)."""

CSS = """
body { font: 14px/1.45 Helvetica, Arial, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; } td.n { text-align: right; }
#filters { position: sticky; top: 0; background: #f6f6f6; border: 1px solid #ddd; padding: .5em; z-index: 1; }
#filters label { margin-right: 1em; } #filters input { width: 7em; }
article.doc { border: 1px solid #ddd; border-left: 4px solid #e15759; margin: .8em 0; padding: .4em .8em; }
article.doc[data-reason="kept"] { border-left-color: #59a14f; }
.meta { color: #555; font-size: 12px; } .reason { font-weight: bold; }
.measure { background: #fff3cd; padding: 0 4px; }
pre { white-space: pre-wrap; word-break: break-word; margin: .3em 0; font-size: 13px; }
details > summary { cursor: pointer; color: #4e79a7; }
.note { color: #a33; font-style: italic; }
"""

# Shows the documents that pass every filter and counts them; a score range hides the documents
# that lack the chosen score.
JS = """
(() => {
  const docs = [...document.querySelectorAll('article.doc')];
  const get = id => document.getElementById(id);
  const number = id => { const v = get(id).value.trim(); return v === '' ? null : Number(v); };
  function apply() {
    const stage = get('stage').value, reason = get('reason').value, source = get('source').value;
    const score = get('score').value, low = number('score-min'), high = number('score-max');
    let visible = 0;
    for (const doc of docs) {
      let show = (!stage || doc.dataset.stage === stage) && (!reason || doc.dataset.reason === reason)
        && (!source || doc.dataset.source === source);
      if (show && score && (low !== null || high !== null)) {
        const value = JSON.parse(doc.dataset.scores)[score];
        show = value !== undefined && (low === null || value >= low) && (high === null || value <= high);
      }
      doc.hidden = !show;
      visible += show;
    }
    get('visible-count').textContent = visible;
  }
  for (const id of ['stage', 'reason', 'source', 'score', 'score-min', 'score-max']) {
    get(id).addEventListener('input', apply);
    get(id).addEventListener('change', apply);
  }
  apply();
})();
"""
