@lwm2m @qemu @docker
Feature: An MCU that cannot speak LwM2M is managed through a bridge with a flasher
  The design's "Raspberry Pi as LwM2M client with a flasher to the microcontroller":
  the bridge registers on the MCU's behalf, flashes it by restarting the emulator
  with the new image, and forwards inferences over the MCU's UART. Real QEMU,
  firmware built by the service's Cortex-M builder container, OSCORE on.

  Background:
    Given the LwM2M service is running with OSCORE security
    And the service has built hello_world firmware "1.0.0" and "2.0.0" for "lm3s6965evb"

  Scenario: the bridge registers its MCU, takes new firmware by FOTA and forwards inferences
    Given device "mcu-a" has credentials from the service
    And a bridge "mcu-a" runs firmware "1.0.0" on an emulated "lm3s6965evb"
    Then the service lists "mcu-a" online over OSCORE with objects 3, 5, 9 and 33100
    And its capabilities say board "lm3s6965evb", firmware "1.0.0", CPU "cortex-m3", 64 KiB of RAM and the hello_world model
    When the service deploys firmware "2.0.0" to "mcu-a"
    Then the deployment succeeds with Update Result "firmware updated successfully"
    And "mcu-a" reports firmware "2.0.0" from an emulator restarted on the new image
    And inferences through LwM2M for x = 0..6 are bit-exact with TFLM and within 0.15 of sin(x)
    And each of those inferences reports the MCU's instruction count

  Scenario: a model update for an MCU without a writable model region falls back to FOTA
    Given device "mcu-b" has credentials from the service
    And a bridge "mcu-b" runs firmware "1.0.0" on an emulated "lm3s6965evb"
    When the service deploys the model of build "2.0.0" to "mcu-b"
    Then the deployment succeeds by FOTA because the MCU firmware has no writable model region
    And "mcu-b" reports firmware "2.0.0" from an emulator restarted on the new image

  @reliability
  Scenario Outline: firmware "2.0.0" that <fault> is flashed back to "1.0.0" by the bridge
    Given device "mcu-<name>" has credentials from the service
    And a bridge "mcu-<name>" runs firmware "1.0.0" on an emulated "lm3s6965evb" with a trial of 5 s
    When the service deploys a signed copy of firmware "2.0.0" that <fault> to "mcu-<name>"
    Then the deployment fails with Update Result "firmware update failed" saying why
    And "mcu-<name>" runs firmware "1.0.0" again and answers inferences bit-exact with TFLM

    Examples:
      | name   | fault                          |
      | crash  | crashes on its first inference |
      | hang   | hangs after its banner         |
      | silent | never prints its banner        |
