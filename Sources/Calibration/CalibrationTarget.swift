/// The number format a calibrated range is for. It decides the MSE fake quantizer and the grid
/// the KL search builds its candidate distribution on (Formats/calibration.md).
public enum CalibrationTarget: String, Sendable, CaseIterable {
    /// Symmetric INT8 (W8A8 INT8): 128 uniform levels per sign, scale = amax / 127 in the searches.
    case int8
    /// FP8 E4M3FN: the non-uniform E4M3 grid, scale = amax / 448.
    case fp8
}
