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

// sqdist(x, x) is NaN where x is NaN or infinite, like x - x: it stays, so that powf(y, sqdist(x, x)) =
// exp(sqdist(x, x) log y) keeps its NaN for y < 0 (a folded 0 would make it exp(0 * log y) = 1).
// IEEE-LABEL: func.func @powf_of_sqdist_of_itself
// IEEE:         %[[X:.*]] = "keir.var"() {category = "i", index = 0 : i64}
// IEEE:         %[[D:.*]] = "keir.sqdist"(%[[X]], %[[X]])
// IEEE:         "keir.mul"({{.*}}%[[D]]
// IEEE:         "keir.exp"
// FINITE-LABEL: func.func @powf_of_sqdist_of_itself
// FINITE-NOT:   keir.sqdist
// FINITE-NOT:   keir.exp
// FINITE:       "keir.constant"() {value = 1.0 : f64}
func.func @powf_of_sqdist_of_itself() -> vector<1xf64> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<2xf64>
  %y = "keir.var"() {index = 1 : i64, category = "j"} : () -> vector<1xf64>
  %d = "keir.sqdist"(%x, %x) : (vector<2xf64>, vector<2xf64>) -> vector<1xf64>
  %l = "keir.log"(%y) : (vector<1xf64>) -> vector<1xf64>
  %m = "keir.mul"(%d, %l) : (vector<1xf64>, vector<1xf64>) -> vector<1xf64>
  %r = "keir.exp"(%m) : (vector<1xf64>) -> vector<1xf64>
  return %r : vector<1xf64>
}
