@operator @lwm2m @docker @slow
Feature: The IT operator describes a whole ML pipeline in one file
  As an on-site IT operator, I want to write one file that says which data to train on, how to
  train and quantize, which boards to build for and which group to deploy to, and have the
  service check it before anything runs, telling me every mistake with its line, so that a
  pipeline that starts ends on my devices. Real training (TensorFlow), a build in the x86
  builder container, the x86 device in its container over LwM2M with OSCORE.

  Background:
    Given the operator's service is running with device credentials
    And it has built hello_world "1.0.0" for "x86-tflm"

  Scenario: a pipeline file with two mistakes is refused naming both, a correct one runs to a deployed device
    Given the iris measurements as dataset "iris"
    And "cam-7" is registered tagged "line-p" and runs firmware "1.0.0" in a container
    And a group "line-p" of the devices tagged "line-p"
    When I check a pipeline file that names board "esp32" and group "line-q"
    Then the service refuses it, naming board "esp32" and group "line-q", each with its line
    And no pipeline run was started
    When I run the pipeline file with board "x86-tflm" and group "line-p"
    Then every stage succeeded, each with its job and what it made
    And "cam-7" runs the model the pipeline trained, and the registry says so
