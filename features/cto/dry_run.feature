@lwm2m @docker @qemu
Feature: The CTO's automated dry-run of the whole lifecycle
  As a CTO, I want one command to take a model through training, building,
  over-the-air delivery and inference on every kind of device, so that I can
  answer support requests with a run instead of a guess.

  Scenario: the lifecycle on an x86 container device and an emulated Cortex-M3
    When the CTO runs the lifecycle dry-run on "x86-tflm" and "lm3s6965evb"
    Then every step passes on both boards
    And each device registered over OSCORE and reported its RAM, flash and CPU
    And the seven inferences matched TFLM before and after the firmware update
    And the retrained model was swapped live on "x86-tflm"
    And on "lm3s6965evb" it was delivered by FOTA because the MCU cannot swap models live

  @ota
  Scenario: the same lifecycle with devices polling the service over HTTP
    When the CTO runs the lifecycle dry-run on "x86-tflm" and "lm3s6965evb" over "http-pull"
    Then every step passes on both boards
    And each device joined polling with its token and reported its RAM, flash and CPU
    And the seven inferences matched TFLM before and after the firmware update
    And the retrained model was swapped live on "x86-tflm"
    And on "lm3s6965evb" it was delivered by FOTA because the MCU cannot swap models live
