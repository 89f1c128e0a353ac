@lwm2m @qemu @docker @slow
Feature: A model with several inputs and outputs runs on every kind of device
  As a data scientist, I want to send a fusion model its motion features and its context
  together, and get both its activity probabilities and its anomaly score back, from an x86
  device and from a microcontroller alike, so that a model with several tensors needs no
  special handling anywhere. Real UDP on loopback, OSCORE on, the x86 device in its
  container, the MCU under QEMU behind the bridge; both images built by the service.

  Background:
    Given the LwM2M service is running with OSCORE security
    And the service has built the sensor_fusion model for "x86-tflm" and "lm3s6965evb"

  Scenario: the same two-input request gets the same two outputs from an x86 device and an emulated Cortex-M3
    Given device "x86-fusion" has credentials from the service
    And device "x86-fusion" boots the sensor_fusion firmware in a container
    And device "mcu-fusion" has credentials from the service
    And a bridge "mcu-fusion" runs the sensor_fusion firmware on an emulated "lm3s6965evb"
    Then "x86-fusion" and "mcu-fusion" each describe the inputs "motion" of 8 values and "context" of 3, and 2 outputs, each tensor with the model's own quantization
    When the data scientist sends 5 samples of motion and context, each input by its name, to "x86-fusion" and "mcu-fusion" through the service
    Then both outputs of every inference are bit-exact with TFLM, on both devices
    And a request to "mcu-fusion" with only the motion values is refused with a problem naming both inputs
