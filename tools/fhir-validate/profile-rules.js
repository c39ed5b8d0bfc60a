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

const has = (code) => `code.coding.where(system = '${LOINC}' and code = '${code}').exists()`;
const percent = `value.ofType(Quantity).system = '${UCUM}' and value.ofType(Quantity).code = '%' and value.ofType(Quantity).unit = '%'`;

// CGMSummaryBase: the members' subject and their period of whole dates.
const summaryBase = [
  ...observationBase,
  { block: "RuleSet: CGMSummaryBase", line: "* effectivePeriod 1..1 MS", expr: "effective.ofType(Period).exists()" },
  { block: "RuleSet: CGMSummaryBase", line: "* start 1..1 MS", expr: "effective.ofType(Period).start.exists()" },
  { block: "RuleSet: CGMSummaryBase", line: "* end 1..1 MS", expr: "effective.ofType(Period).end.exists()" },
];

const quantityPercent = [
  { block: "RuleSet: QuantityPercent", line: "* value[x] only Quantity", expr: "value.ofType(Quantity).exists()" },
  { block: "RuleSet: QuantityPercent", line: "* valueQuantity 1..1 MS", expr: "value.exists()" },
  { block: "RuleSet: QuantityPercent", line: `* valueQuantity = '%' "%"`, expr: percent },
];

const member = (profile, codeLine, loinc, value) => [
  ...summaryBase,
  { block: `Profile: ${profile}`, line: codeLine, expr: has(loinc) },
  ...value,
];

// The summary's slices are on hasMember, discriminated by the referenced resource's code:
// %members is what hasMember references, resolved in the same Bundle by validate.js.
const slice = (line, loinc, count, profile) => [
  {
    block: "Profile: CGMSummaryObservation",
    line,
    expr: `%members.where(${has(loinc)}).count() ${count}`,
  },
  {
    block: "Profile: CGMSummaryObservation",
    line: `* hasMember[${line.split(" ")[0]}] only Reference(${profile})`,
    expr: `%members.where(${has(loinc)}).all(meta.profile contains '${CGM}${profileIds[profile]}')`,
  },
];

const CGM = "http://hl7.org/fhir/uv/cgm/StructureDefinition/";
const profileIds = {
  CGMSummaryMeanGlucoseMassPerVolume: "cgm-summary-mean-glucose-mass-per-volume",
  CGMSummaryMeanGlucoseMolesPerVolume: "cgm-summary-mean-glucose-moles-per-volume",
  CGMSummaryTimesInRanges: "cgm-summary-times-in-ranges",
  CGMSummaryGMI: "cgm-summary-gmi",
  CGMSummaryCoefficientOfVariation: "cgm-summary-coefficient-of-variation",
  CGMSummaryDaysOfWear: "cgm-summary-days-of-wear",
  CGMSummarySensorActivePercentage: "cgm-summary-sensor-active-percentage",
};

const ranges = [
  ["timeInVeryLow", "TimeInVeryLowWithLoinc", "104642-4"],
  ["timeInLow", "TimeInLowWithLoinc", "104641-6"],
  ["timeInTarget", "TimeInTargetWithLoinc", "97510-2"],
  ["timeInHigh", "TimeInHighWithLoinc", "104640-8"],
  ["timeInVeryHigh", "TimeInVeryHighWithLoinc", "104639-0"],
];

// The submission bundle's entry slices are discriminated by resource type and code; each
// slice's resource must claim its profile (validate.js checks each entry's own rules).
const submissionSlice = (line, where, profile) => ({
  block: "Profile: CGMDataSubmissionBundle",
  line,
  expr: `entry.resource.where(${where}).all(meta.profile contains '${CGM}${profile}')`,
});
const readingCodes = "code.coding.where(system = '" + LOINC + "' and (code = '105272-9' or code = '99504-3')).exists()";

module.exports = {
  "cgm-data-submission-bundle": [
    { block: "Profile: CGMDataSubmissionBundle", line: "* type = #transaction", expr: "type = 'transaction'" },
    { block: "Profile: CGMDataSubmissionBundle", line: "* timestamp 1..1 MS", expr: "timestamp.exists()" },
    { block: "Profile: CGMDataSubmissionBundle", line: "* entry 1..* MS", expr: "entry.count() >= 1" },
    {
      block: "Profile: CGMDataSubmissionBundle",
      line: "patient 0..1 MS and",
      expr: "entry.resource.where(resourceType = 'Patient').count() <= 1",
    },
    submissionSlice("* entry[device].resource only CGMDevice", "resourceType = 'Device'", "cgm-device"),
    submissionSlice(
      "* entry[cgmSummary].resource only CGMSummaryObservation",
      `resourceType = 'Observation' and ${has("107931-8")}`,
      "cgm-summary",
    ),
    {
      block: "Profile: CGMDataSubmissionBundle",
      line: "* entry[cgmSensorReadingMolesPerVolume].resource only CGMSensorReadingMolesPerVolume",
      expr: `entry.resource.where(resourceType = 'Observation' and ${readingCodes}).all(meta.profile.exists(startsWith('${CGM}cgm-sensor-reading-')))`,
    },
    {
      block: "Profile: CGMDataSubmissionBundle",
      line: "* entry[diagnosticReport].resource only CGMSummaryPDF",
      expr: `entry.resource.where(resourceType = 'DiagnosticReport').all(meta.profile contains '${CGM}cgm-summary-pdf')`,
    },
    {
      block: "Profile: CGMDataSubmissionBundle",
      line: "Once a Data Submitter is connected to the EHR, it can POST CGM data as a [`transaction` Bundle](https://hl7.org/fhir/R4/http.html#transaction)  to `[base]/$submit-cgm-bundle`.",
      expr: "entry.all(request.method = 'POST')",
      what: "every entry is a POST",
    },
  ],
  "cgm-summary-pdf": [
    { block: "RuleSet: DiagnosticReportBase", line: "* subject 1..1 MS", expr: "subject.exists()" },
    { block: "Profile: CGMSummaryPDF", line: "* code = $LNC#107931-8 // \"Continuous glucose monitoring summary panel - Reporting Period\"", expr: has("107931-8") },
    { block: "Profile: CGMSummaryPDF", line: "* effectivePeriod 1..1 MS", expr: "effective.ofType(Period).exists()" },
    { block: "Profile: CGMSummaryPDF", line: "* start 1..1 MS", expr: "effective.ofType(Period).start.exists()" },
    { block: "Profile: CGMSummaryPDF", line: "* end 1..1 MS", expr: "effective.ofType(Period).end.exists()" },
    {
      block: "Profile: CGMSummaryPDF",
      line: "cgmSummaryPDF 1..* MS",
      expr: "presentedForm.where(contentType = 'application/pdf').count() >= 1",
    },
    {
      block: "Profile: CGMSummaryPDF",
      line: "* data 1..1 MS",
      expr: "presentedForm.where(contentType = 'application/pdf').all(data.exists())",
    },
    {
      block: "Profile: CGMSummaryPDF",
      line: "* data 1..1 MS",
      expr: "presentedForm.where(contentType = 'application/pdf').all(data.startsWith('JVBERi0'))",
      what: "the data is a PDF (base64 of %PDF-)",
    },
  ],
  "cgm-summary": [
    ...observationBase,
    { block: "Profile: CGMSummaryObservation", line: "* code = CGMSummaryWithLoinc", expr: has("107931-8") },
    { block: "Profile: CGMSummaryObservation", line: "* effectivePeriod 1..1 MS", expr: "effective.ofType(Period).exists()" },
    { block: "Profile: CGMSummaryObservation", line: "* start 1..1 MS", expr: "effective.ofType(Period).start.exists()" },
    { block: "Profile: CGMSummaryObservation", line: "* end 1..1 MS", expr: "effective.ofType(Period).end.exists()" },
    { block: "Profile: CGMSummaryObservation", line: "* hasMember 6..*", expr: "hasMember.count() >= 6" },
    {
      block: "Profile: CGMSummaryObservation",
      line: "* hasMember 6..*",
      expr: "%members.count() = hasMember.count()",
      what: "every hasMember resolves in the Bundle",
    },
    ...slice("meanGlucoseMassPerVolume 0..1 and", "97507-8", "<= 1", "CGMSummaryMeanGlucoseMassPerVolume"),
    ...slice("meanGlucoseMolesPerVolume 0..1 and", "105273-7", "<= 1", "CGMSummaryMeanGlucoseMolesPerVolume"),
    ...slice("timesInRanges 1..1 MS and", "106793-3", "= 1", "CGMSummaryTimesInRanges"),
    ...slice("gmi 1..1 MS and", "97506-0", "= 1", "CGMSummaryGMI"),
    ...slice("cv 1..1 MS and", "104638-2", "= 1", "CGMSummaryCoefficientOfVariation"),
    ...slice("daysOfWear 1..1 MS and", "104636-6", "= 1", "CGMSummaryDaysOfWear"),
    ...slice("sensorActivePercentage 1..1 MS", "104637-4", "= 1", "CGMSummarySensorActivePercentage"),
  ],
  "cgm-summary-times-in-ranges": [
    ...summaryBase,
    { block: "Profile: CGMSummaryTimesInRanges", line: "* code = TimesInRangesLoinc", expr: has("106793-3") },
    ...ranges.flatMap(([slice, instance, loinc]) => [
      {
        block: "Profile: CGMSummaryTimesInRanges",
        line: slice === "timeInVeryHigh" ? `${slice} 1..1 MS` : `${slice} 1..1 MS and`,
        expr: `component.where(${has(loinc)}).count() = 1`,
      },
      {
        block: "Profile: CGMSummaryTimesInRanges",
        line: `* code = ${instance}`,
        expr: `component.where(${has(loinc)}).exists()`,
      },
    ]),
    {
      block: "RuleSet: QuantityPercent",
      line: `* valueQuantity = '%' "%"`,
      expr: `component.all(${percent})`,
      what: "each range's component, through insert QuantityPercent",
    },
  ],
  "cgm-summary-mean-glucose-moles-per-volume": member(
    "CGMSummaryMeanGlucoseMolesPerVolume", "* code = MeanGlucoseMolar", "105273-7",
    glucose("GlucoseMolesPerVolume", "mmol/L", "mmol/l")),
  "cgm-summary-mean-glucose-mass-per-volume": member(
    "CGMSummaryMeanGlucoseMassPerVolume", "* code = MeanGlucoseMassPerVolumeWithLoinc", "97507-8",
    glucose("GlucoseMassPerVolume", "mg/dL", "mg/dl")),
  "cgm-summary-gmi": member("CGMSummaryGMI", "* code = GMIWithLoinc", "97506-0", quantityPercent),
  "cgm-summary-coefficient-of-variation": member(
    "CGMSummaryCoefficientOfVariation", "* code = CVWithLoinc", "104638-2", quantityPercent),
  "cgm-summary-days-of-wear": member("CGMSummaryDaysOfWear", "* code = DaysOfWearWithLoinc", "104636-6", [
    { block: "Profile: CGMSummaryDaysOfWear", line: "* valueQuantity 1..1 MS", expr: "value.ofType(Quantity).exists()" },
    {
      block: "Profile: CGMSummaryDaysOfWear",
      line: `* valueQuantity = 'd' "days"`,
      expr: `value.ofType(Quantity).system = '${UCUM}' and value.ofType(Quantity).code = 'd' and value.ofType(Quantity).unit = 'days'`,
    },
  ]),
  "cgm-summary-sensor-active-percentage": member(
    "CGMSummarySensorActivePercentage", "* code = SensorActivePercentageWithLoinc", "104637-4", quantityPercent),
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
