// Custom validators of the every-rule form: function(field, value, ...args) → an error message or null.
// botsOddLength and botsInRange have Python twins registered by tests/test_bots.py (the server checks them);
// botsBrowserOnly has none: only a browser checks it, and a bot cannot know it.
export function botsOddLength(field, value, check) {
  return !check || String(value || "").length % 2 === 1 ? null : "Use an odd number of characters.";
}

export function botsInRange(field, value, low, high) {
  const number = Number(value);
  return number >= low && number <= high ? null : `Enter a number from ${low} to ${high}.`;
}

export function botsBrowserOnly(field, value, mark) {
  return String(value || "").endsWith(mark) ? null : `End with ${mark}`;
}
