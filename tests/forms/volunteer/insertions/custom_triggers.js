// Triggers of the volunteer form: function(formData, updateFormData, element, fieldValue, formFields, ...args).
import { validateFieldValue } from "mephisto-task-addons";

export function onChangeShift(formData, updateFormData, element, fieldValue, formFields, noteId) {
  const note = document.getElementById(noteId);
  note.textContent = fieldValue === "night" ? "Night shifts end at 2 am; we pay for a taxi home." : "";
  if (validateFieldValue(formFields.source, "shift-" + fieldValue, true)) {
    updateFormData("source", "shift-" + fieldValue);
  }
}

export function onClickStory(formData, updateFormData, element, fieldValue, formFields, name) {
  document.body.dataset.clicked = name;
}

export function onClickRegister(formData) {
  document.body.dataset.registering = "yes";
}

export function onFocusName() {
  document.body.dataset.nameFocused = "yes";
}

export function onBlurName(formData, updateFormData, element, fieldValue, formFields, how) {
  document.body.dataset.nameBlurred = how + ":" + fieldValue;
}
