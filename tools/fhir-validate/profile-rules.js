// The HL7 CGM IG's profile rules (profiles.fsh, hl7.fhir.uv.cgm 1.0.0) that a resource of
// each profile must meet, as FHIRPath. Each rule names the block of profiles.fsh it comes
// from and the rule's own line, word for word: validate.js finds that line and cites its
// number, and refuses to run when a rule's line is not in the block (the citation would lie).
// The IG's invariants are not restated here: validate.js evaluates their own Expression.

const UCUM = "http://unitsofmeasure.org";
const LOINC = "http://loinc.org";

const observationBase = [
  { block: "RuleSet: ObservationBase", line: "* subject 1..1 MS", expr: "subject.exists()" },
];

const quantity = (code, unit) =>
  `value.empty() or (value.ofType(Quantity).system = '${UCUM}' and value.ofType(Quantity).code = '${code}' ` +
  `and value.ofType(Quantity).unit = '${unit}')`;

const glucose = (ruleset, code, unit) => [
  { block: `RuleSet: ${ruleset}`, line: "* value[x] only Quantity", expr: "value.empty() or value.ofType(Quantity).exists()" },
  { block: `RuleSet: ${ruleset}`, line: `* valueQuantity = '${code}' "${unit}"`, expr: quantity(code, unit) },
];

const reading = (profile, ruleset, loinc, code, unit) => [
  ...observationBase,
  ...glucose(ruleset, code, unit),
  { block: `Profile: ${profile}`, line: "* obeys cgm-sensor-value-or-dar", invariant: "cgm-sensor-value-or-dar" },
  {
    block: `Profile: ${profile}`,
    line: `* code = $LNC#${loinc}`,
    expr: `code.coding.where(system = '${LOINC}' and code = '${loinc}').exists()`,
  },
  { block: `Profile: ${profile}`, line: "* effectiveDateTime 1..1 MS", expr: "effective.ofType(dateTime).exists()" },
];

module.exports = {
  "cgm-sensor-reading-moles-per-volume": reading(
    "CGMSensorReadingMolesPerVolume", "GlucoseMolesPerVolume", "105272-9", "mmol/L", "mmol/l"),
  "cgm-sensor-reading-mass-per-volume": reading(
    "CGMSensorReadingMassPerVolume", "GlucoseMassPerVolume", "99504-3", "mg/dL", "mg/dl"),
  "cgm-device": [
    { block: "Profile: CGMDevice", line: "* deviceName 1..* MS", expr: "deviceName.count() >= 1" },
    {
      block: "Profile: CGMDevice",
      line: "cgmDeviceName 1..1 MS",
      expr: "deviceName.where(type = 'user-friendly-name').count() = 1",
    },
    {
      block: "Profile: CGMDevice",
      line: "* deviceName[cgmDeviceName].name 1..1 MS",
      expr: "deviceName.where(type = 'user-friendly-name').name.exists()",
    },
    {
      block: "Profile: CGMDevice",
      line: "* deviceName[cgmDeviceName].type = #user-friendly-name",
      expr: "deviceName.where(type = 'user-friendly-name').exists()",
    },
    { block: "Profile: CGMDevice", line: "* identifier 1..* MS", expr: "identifier.count() >= 1" },
    { block: "Profile: CGMDevice", line: "* serialNumber 0..1 MS", expr: "serialNumber.count() <= 1" },
  ],
};
