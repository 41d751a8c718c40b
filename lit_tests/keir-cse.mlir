// RUN: keir-opt %s --keir-cse | FileCheck %s
// RUN: keir-opt %s --pass-pipeline='builtin.module(keir-cse)' --print-ir-after-all 2>&1 | FileCheck %s --check-prefix=DUMP

// Structurally equal ops become one; ops that do not reach the result disappear.
// CHECK-LABEL: func.func @dup
// CHECK: %[[X:.*]] = "keir.var"
// CHECK-NEXT: %[[E:.*]] = "keir.exp"(%[[X]])
// CHECK-NEXT: "keir.add"(%[[E]], %[[E]])
// CHECK-NOT: keir.log
// DUMP: // -----// IR Dump After keir-cse //----- //
func.func @dup() -> vector<1xf32> {
  %x = "keir.var"() {index = 0 : i64, category = "i"} : () -> vector<1xf32>
  %a = "keir.exp"(%x) : (vector<1xf32>) -> vector<1xf32>
  %b = "keir.exp"(%x) : (vector<1xf32>) -> vector<1xf32>
  %dead = "keir.log"(%x) : (vector<1xf32>) -> vector<1xf32>
  %s = "keir.add"(%a, %b) : (vector<1xf32>, vector<1xf32>) -> vector<1xf32>
  return %s : vector<1xf32>
}
