// Stands in for the helpers Mephisto's trigger and validator modules import ("react-form-composer",
// "mephisto-task-addons"), so an insertions/custom_triggers.js written for Mephisto runs unchanged.
export function validateFieldValue(field, value, writeConsoleLog) {
  return window.crowdForms ? window.crowdForms.validateFieldValue(field, value, writeConsoleLog) : true;
}
