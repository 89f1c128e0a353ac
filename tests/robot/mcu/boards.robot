*** Settings ***
Documentation     hello_world on every emulated board, under every emulator its board.toml
...               names: one row per board and emulator (tests/mcu/test_robot_rows.py keeps the
...               rows equal to the boards' data). Rows of an emulator that is not installed
...               are skipped with the reason (Renode, in CI).
Resource          hello_world.resource
Test Template     hello_world On Board Under Emulator Equals TFLM
Test Teardown     Reset Emulation


*** Test Cases ***                                BOARD                        EMULATOR
lm3s6965evb under QEMU                            lm3s6965evb                  qemu
microbit under QEMU                               microbit                     qemu
mps2-an385 under QEMU                             mps2-an385                   qemu
mps2-an386 under QEMU                             mps2-an386                   qemu
netduinoplus2 under QEMU                          netduinoplus2                qemu
stm32vldiscovery under QEMU                       stm32vldiscovery             qemu
netduinoplus2 under Renode                        netduinoplus2                renode
stm32vldiscovery under Renode                     stm32vldiscovery             renode
arduino-nano-33-ble-sense under Renode            arduino-nano-33-ble-sense    renode
itsybitsy-m4 under Renode                         itsybitsy-m4                 renode
stm32f746g-disco under Renode                     stm32f746g-disco             renode


*** Keywords ***
hello_world On Board Under Emulator Equals TFLM
    [Arguments]    ${board}    ${emulator}
    hello_world On ${board} Under ${emulator} Equals TFLM
