// Custom validators of the volunteer form: function(field, value, ...args) → an error message or null.
const FORBIDDEN = ["stupid", "idiot"];

export function noForbiddenWords(field, value, check) {
  if (!check) return null;
  const text = String(value || "").toLowerCase();
  return FORBIDDEN.some((word) => text.includes(word)) ? "Please keep it polite." : null;
}

export function inRange(field, value, low, high) {
  const number = Number(value);
  return number >= low && number <= high ? null : `Enter a whole age from ${low} to ${high}.`;
}
