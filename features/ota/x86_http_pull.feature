@ota @docker @x86
Feature: x86 devices managed over plain HTTP pull (the http-pull orchestrator)
  As an IT operator whose sites let only outgoing HTTP through, I want the same
  remote inference, FOTA and SOTA as over LwM2M, with devices long-polling the
  service for their commands. The x86 device runs in its container; the service
  (orchestrator "http-pull", token security) builds the firmware in its builder.

  Background:
    Given the service runs the http-pull orchestrator with token security
    And the service has built hello_world firmware "1.0.0" and "2.0.0" for "x86-tflm"
    And the service has built the hello_world_float model for "x86-tflm"

  Scenario: a polling device is listed with its capabilities and takes new firmware
    Given device "pull-fota" has a token from the service
    When device "pull-fota" boots firmware "1.0.0" in a container polling the service
    Then the service lists "pull-fota" online over HTTP pull with board "x86-tflm" and firmware "1.0.0"
    When the service deploys firmware "2.0.0" to "pull-fota"
    Then the deployment succeeds with Update Result "firmware updated successfully"
    And "pull-fota" reports firmware "2.0.0" after rebooting once
    And inferences through the service for x = 0..6 are bit-exact with TFLM and within 0.15 of sin(x)

  Scenario: FOTA of a corrupted image over HTTP pull is refused; the old firmware keeps running
    Given device "pull-bad" has a token from the service
    And device "pull-bad" boots firmware "1.0.0" in a container polling the service
    And a copy of firmware "2.0.0" whose stored bytes got corrupted
    When the service deploys the corrupted firmware to "pull-bad"
    Then the deployment fails with Update Result "integrity check failure"
    And "pull-bad" still runs firmware "1.0.0" without having rebooted

  Scenario: SOTA over HTTP pull swaps the model without losing an inference request
    Given device "pull-sota" has a token from the service
    And device "pull-sota" boots firmware "1.0.0" in a container polling the service
    And a client keeps sending inference requests to "pull-sota"
    When the service deploys the hello_world_float model to "pull-sota"
    Then the deployment succeeds with Update Result "software successfully installed"
    And "pull-sota" serves the hello_world_float model without having rebooted
    And every inference request was answered, by the old model and then by the new one

  Scenario: a device with a wrong token is refused
    Given device "pull-wrong" has a token from the service, but the device's copy is wrong
    When device "pull-wrong" boots firmware "1.0.0" in a container polling the service
    Then "pull-wrong" is not listed by the service after 3 s
    And the device log says the service refused its poll

  @qemu
  Scenario: a bridge polls for its emulated MCU: FOTA restarts the emulator, inferences carry instruction counts
    Given the service has built hello_world firmware "1.0.0" and "2.0.0" for "lm3s6965evb"
    And device "mcu-pull" has a token from the service
    And a bridge "mcu-pull" polling the service runs firmware "1.0.0" on an emulated "lm3s6965evb"
    When the service deploys firmware "2.0.0" to "mcu-pull"
    Then the deployment succeeds with Update Result "firmware updated successfully"
    And "mcu-pull" reports firmware "2.0.0" from an emulator restarted on the new image
    And inferences through the service for x = 0..6 are bit-exact with TFLM and within 0.15 of sin(x)
    And each of those inferences reports the MCU's instruction count
