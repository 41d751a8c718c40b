// RUN: keir-opt %s --keir-simplify | FileCheck %s --check-prefix=IEEE
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-simplify{assume-finite=true})' | FileCheck %s --check-prefix=FINITE

// x - x is NaN where x is NaN or infinite: keir-simplify keeps it, unless told that values are finite.
// IEEE-LABEL: func.func @cancel
// IEEE:         %[[X:.*]] = "keir.exp"
// IEEE:         "keir.sub"(%[[X]], %[[X]])
// FINITE-LABEL: func.func @cancel
// FINITE-NOT:   keir.sub
// FINITE:       "keir.constant"() {value = 0.0 : f64}
func.func @cancel() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "j"} : () -> vector<1xf64>
  %e = "keir.exp"(%x) : (vector<1xf64>) -> vector<1xf64>
  %r = "keir.sub"(%e, %e) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
